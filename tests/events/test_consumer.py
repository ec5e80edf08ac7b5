"""Durable subscriptions on real Redis: delivery, acks, retries, dead letters, requeue, stats."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from claudebench.core import bus as core_bus
from claudebench.core import keys
from events.redis_bus import RedisBus
from events.types import TransientError

from .conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def pending(redis, stream: str, group: str) -> int:
    return (await redis.xpending(stream, group))["pending"]


async def test_matching_events_are_delivered_once_and_acknowledged(redis, running, sub):
    got = []

    async def handler(event):
        got.append((event.type, event.payload))

    s = sub("task.*", handler, name="tasks")
    await core_bus.publish("task.created", {"n": 1})
    await core_bus.publish("swarm.assigned", {"n": 2})
    await core_bus.record_request("task.create", {"text": "x"}, client_id=None)  # a request record
    async with running(s) as consumer:
        await core_bus.publish("task.attachment.deleted", {"n": 3})
        await wait_until(lambda: len(got) == 2, what="two task events")
        await wait_until(lambda: consumer.totals.processed == 2)
    assert sorted(got) == [("task.attachment.deleted", {"n": 3}), ("task.created", {"n": 1})]
    assert await pending(redis, keys.stream("task.created"), s.group) == 0
    assert await pending(redis, keys.stream("task.create"), s.group) == 0  # request record skipped, acked
    assert not await redis.exists(keys.stream("swarm.assigned")) or not await redis.xinfo_groups(
        keys.stream("swarm.assigned"))  # no group on streams the pattern does not match
    counters = await redis.hgetall(keys.consumer_metrics(s.group))
    assert counters["processed"] == "2" and counters["skipped"] == "1"


async def test_events_written_before_the_group_existed_are_delivered(redis, running, sub):
    got = []

    async def handler(event):
        got.append(event.id)

    ids = [await core_bus.publish("task.created", {"n": n}) for n in range(5)]
    async with running(sub("task.created", handler, name="late")):
        await wait_until(lambda: len(got) == 5)
    assert got == ids  # stream order


async def test_session_streams_are_never_consumed(redis, running, sub):
    got = []

    async def handler(event):
        got.append(event.stream)

    await redis.xadd("cb:stream:session:s-1", {"data": orjson.dumps(core_bus.envelope("hook.x", {})).decode()})
    await core_bus.publish("session.rehydrated", {})
    async with running(sub("*", handler, name="everything")) as consumer:
        await wait_until(lambda: got == ["cb:stream:session.rehydrated"])
        assert "cb:stream:session:s-1" not in consumer.streams
    assert await redis.xinfo_groups("cb:stream:session:s-1") == []


async def test_failing_handler_is_retried_with_growing_delays_then_dead_lettered_and_requeued(
        redis, running, sub, call):
    attempts: list[float] = []
    fail = True
    delivered = []

    async def handler(event):
        attempts.append(time.monotonic())
        if fail:
            raise RuntimeError(f"cannot handle {event.payload['n']}")
        delivered.append(event.id)

    others = []

    async def bystander(event):
        others.append(event.id)

    s = sub("task.created", handler, name="flaky", max_retries=3, retry_delay_ms=100, use_dlq=True)
    watcher = sub("task.*", bystander, name="bystander")
    event_id = await core_bus.publish("task.created", {"n": 7}, correlation_id="corr-1")
    async with running(s) as consumer, running(watcher, name="w1"):
        await wait_until(lambda: consumer.totals.dead_lettered == 1, what="dead letter")
        await wait_until(lambda: others == [event_id])
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert len(attempts) == 3
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[1] > gaps[0]  # 100 ms, then 200 ms
    assert await pending(redis, keys.stream("task.created"), s.group) == 0

    listed = await call("events.dead_letters", {"type": "task.created"})
    assert listed["count"] == 1
    dead = listed["deadLetters"][0]
    md = dead["envelope"]["metadata"]
    assert dead["envelope"]["id"] == event_id and dead["group"] == s.group
    assert md["failureReason"] == "RuntimeError: cannot handle 7"
    assert md["attempts"] == 3 and md["correlationId"] == "corr-1"
    assert md["originalStreamId"] == dead["entry"]
    stats = {g["group"]: g for g in (await call("events.stats"))["groups"]}
    assert stats[s.group]["failed"] == 1 and stats[s.group]["retried"] == 2
    assert stats[s.group]["deadLettered"] == 1 and stats[s.group]["pending"] == 0

    fail = False
    out = await call("events.requeue", {"type": "task.created", "id": dead["dlqId"]})
    assert out["requeued"] is True
    async with running(s, name="c2"), running(watcher, name="w2") as w:
        await wait_until(lambda: delivered == [event_id], what="redelivery")
        await wait_until(lambda: w.totals.skipped >= 1, what="bystander skips the requeued copy")
    assert others == [event_id]  # the other subscription did not get it twice
    assert (await call("events.dead_letters", {"type": "task.created"}))["count"] == 0


async def test_requeue_of_unknown_dead_letter_is_a_clear_error(redis, call):
    from claudebench.core.errors import HandlerError, InvalidParams

    with pytest.raises(HandlerError, match="Dead letter not found"):
        await call("events.requeue", {"type": "task.created", "id": "1-0"})
    with pytest.raises(InvalidParams):
        await call("events.requeue", {"type": "task.created", "id": "not-an-id"})


async def test_without_dead_letter_queue_a_final_failure_is_counted_and_acknowledged(redis, running, sub):
    async def handler(event):
        raise ValueError("no")

    s = sub("task.created", handler, name="nodlq", max_retries=2, use_dlq=False)
    await core_bus.publish("task.created", {})
    async with running(s) as consumer:
        await wait_until(lambda: consumer.totals.failed == 1)
    assert await redis.exists(keys.dlq("task.created")) == 0
    assert await pending(redis, keys.stream("task.created"), s.group) == 0


async def test_transient_errors_wait_without_using_up_attempts(redis, running, sub):
    calls = []

    async def handler(event):
        calls.append(event.attempt)
        if len(calls) <= 4:
            raise TransientError("database down")

    s = sub("task.created", handler, name="transient", max_retries=2, use_dlq=True)
    await core_bus.publish("task.created", {})
    async with running(s) as consumer:
        await wait_until(lambda: consumer.totals.processed == 1)
    assert len(calls) == 5 and consumer.totals.failed == 0
    assert await redis.exists(keys.dlq("task.created")) == 0


async def test_malformed_entries_are_dead_lettered_not_retried(redis, running, sub):
    async def handler(event):
        raise AssertionError("never called")

    s = sub("task.created", handler, name="strict", use_dlq=True)
    await redis.xadd(keys.stream("task.created"), {"data": "not json"})
    async with running(s) as consumer:
        await wait_until(lambda: consumer.totals.dead_lettered == 1)
    rows = await RedisBus().dead_letters("task.created")
    assert rows[0]["envelope"]["metadata"]["failureReason"].startswith("malformed entry")


async def test_concurrency_limit_is_respected(redis, running, sub):
    active, peak, done = 0, 0, []

    async def handler(event):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.03)
        active -= 1
        done.append(event.id)

    for n in range(12):
        await core_bus.publish("task.created", {"n": n})
    async with running(sub("task.created", handler, name="conc", concurrency=3)):
        await wait_until(lambda: len(done) == 12)
    assert 1 < peak <= 3


async def test_batch_subscription_gets_lists_of_at_most_batch_size(redis, running, sub):
    batches = []

    async def handler(events):
        batches.append([e.payload["n"] for e in events])

    for n in range(12):
        await core_bus.publish("task.created", {"n": n})
    async with running(sub("task.created", handler, name="batchy", batch=True, batch_size=5)):
        await wait_until(lambda: sum(map(len, batches)) == 12)
    assert all(len(b) <= 5 for b in batches)
    assert [n for b in batches for n in b] == list(range(12))


async def test_entries_of_a_dead_consumer_are_claimed_by_another(redis, running, sub, settings):
    got = []

    async def handler(event):
        got.append(event.payload["n"])

    s = sub("task.created", handler, name="claimer")
    stream = keys.stream("task.created")
    for n in range(3):
        await core_bus.publish("task.created", {"n": n})
    await redis.xgroup_create(stream, s.group, id="0")
    taken = await redis.xreadgroup(s.group, "dead-consumer", {stream: ">"}, count=10)  # then it "dies"
    assert len(taken[0][1]) == 3
    async with running(s, name="alive") as consumer:
        await wait_until(lambda: sorted(got) == [0, 1, 2], what="claimed entries")
    assert consumer.totals.claimed == 3
    assert await pending(redis, stream, s.group) == 0


async def test_filter_transform_and_causation(redis, running, sub):
    got = []

    async def handler(event):
        got.append((event.payload, event.correlation_id, event.caused()))

    def only_high(event):
        return event.payload["priority"] >= 50

    def tag(event):
        event.payload = {**event.payload, "seen": True}
        return event

    await core_bus.publish("task.created", {"priority": 10}, correlation_id="c-1")
    high = await core_bus.publish("task.created", {"priority": 90}, correlation_id="c-2")
    async with running(sub("task.created", handler, name="ft", filter=only_high, transform=tag)) as consumer:
        await wait_until(lambda: consumer.totals.skipped == 1 and len(got) == 1)
    assert got == [({"priority": 90, "seen": True}, "c-2", {"causationId": high, "correlationId": "c-2"})]


async def test_stats_report_lag_and_pending(redis, sub, call):
    async def handler(event):
        return None

    s = sub("task.created", handler, name="stats", register=True)
    for n in range(4):
        await core_bus.publish("task.created", {"n": n})
    stream = keys.stream("task.created")
    await redis.xgroup_create(stream, s.group, id="0")
    await redis.xreadgroup(s.group, "x", {stream: ">"}, count=1)  # one read, not acknowledged
    row = {g["group"]: g for g in (await call("events.stats"))["groups"]}[s.group]
    assert row["pending"] == 1 and row["lag"] == 3 and row["streams"] == 1
    stats = await call("events.stats")
    assert stats["adapter"] == "redis" and stats["isHealthy"] is True


async def test_several_consumers_share_one_group(redis, running, sub):
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def make(name):
        async def handler(event):
            await asyncio.sleep(0.005)
            seen[name].append(event.payload["n"])
        return handler

    # Two consumers of the same group: each event goes to exactly one of them.
    s_a = sub("task.created", make("a"), name="shared", batch_size=5)
    s_b = sub("task.created", make("b"), name="shared", batch_size=5)
    async with running(s_a, name="a"), running(s_b, name="b"):
        for n in range(60):
            await core_bus.publish("task.created", {"n": n})
        await wait_until(lambda: len(seen["a"]) + len(seen["b"]) >= 60)
    assert sorted(seen["a"] + seen["b"]) == list(range(60))


async def test_a_raising_filter_dead_letters_that_event_and_the_consumer_goes_on(redis, running, sub):
    got = []

    async def handler(event):
        got.append(event.payload["n"])

    def picky(event):
        if event.payload["n"] == 1:
            raise KeyError("boom")
        return True

    for n in range(3):
        await core_bus.publish("task.created", {"n": n})
    async with running(sub("task.created", handler, name="picky", filter=picky, use_dlq=True)) as consumer:
        await wait_until(lambda: got == [0, 2] and consumer.totals.dead_lettered == 1)
    rows = await RedisBus().dead_letters("task.created")
    assert rows[0]["envelope"]["metadata"]["failureReason"].startswith("filter/transform: KeyError")
