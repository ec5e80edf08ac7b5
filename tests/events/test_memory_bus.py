"""The in-memory adapter: the same API and semantics as the Redis bus, inside one process."""

from __future__ import annotations

import time

import pytest

from events.bus import get_bus, reset_memory_bus
from events.memory_bus import MemoryBus
from events.redis_bus import RedisBus


@pytest.fixture
async def bus(settings):
    settings.EVENT_BUS_ADAPTER = "memory"
    reset_memory_bus()
    b = get_bus()
    yield b
    await b.close()
    reset_memory_bus()


async def test_adapter_is_chosen_by_setting(settings):
    settings.EVENT_BUS_ADAPTER = "redis"
    assert isinstance(get_bus(), RedisBus)
    settings.EVENT_BUS_ADAPTER = "memory"
    assert isinstance(get_bus(), MemoryBus)
    settings.EVENT_BUS_ADAPTER = "kafka"
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="EVENT_BUS_ADAPTER"):
        get_bus()
    reset_memory_bus()


async def test_patterns_delivery_and_duplicate_ids(bus):
    got = []

    async def handler(event):
        got.append(event.type)

    bus.subscribe("task.*", handler, name="tasks")
    await bus.publish("task.created", {})
    await bus.publish("task.attachment.deleted", {})
    await bus.publish("swarm.assigned", {})
    await bus.publish("task.created", {}, id="evt-1")
    await bus.publish("task.created", {}, id="evt-1")  # dropped by the exactly-once gate
    await bus.drain()
    assert got == ["task.created", "task.attachment.deleted", "task.created"]


async def test_retries_with_backoff_then_dead_letter_and_requeue(bus):
    attempts, fail, delivered = [], True, []

    async def handler(event):
        attempts.append(time.monotonic())
        if fail:
            raise RuntimeError("boom")
        delivered.append(event.id)

    bus.subscribe("task.created", handler, name="flaky", max_retries=3, retry_delay_ms=30, use_dlq=True)
    event_id = await bus.publish("task.created", {"n": 1}, correlation_id="c-1")
    await bus.drain()
    assert len(attempts) == 3 and attempts[2] - attempts[1] > attempts[1] - attempts[0] >= 0.03
    dead = await bus.dead_letters("task.created")
    assert len(dead) == 1 and dead[0]["envelope"]["metadata"]["failureReason"] == "RuntimeError: boom"
    assert dead[0]["envelope"]["metadata"]["correlationId"] == "c-1"
    group = (await bus.stats())["groups"][0]
    assert (group["failed"], group["retried"], group["deadLettered"]) == (1, 2, 1)
    fail = False
    await bus.requeue("task.created", dead[0]["dlqId"])
    await bus.drain()
    assert delivered == [event_id] and await bus.dead_letters() == []


async def test_batches_replay_recent_and_correlation(bus):
    batches = []

    async def handler(events):
        batches.append(len(events))

    bus.subscribe_batch("*", handler, name="batches", batch_size=4, batch_timeout_ms=50)
    ids = [await bus.publish("task.created", {"n": n}, correlation_id="c" if n % 2 else None) for n in range(10)]
    await bus.drain()
    assert sum(batches) == 10 and max(batches) <= 4
    history = await bus.replay("task.created")
    assert [e.id for e in history] == ids
    after = await bus.replay("task.*", after=history[6].entry_id)
    assert [e.id for e in after] == ids[7:]
    assert [e.id for e in await bus.recent(limit=2)] == ids[:-3:-1]
    assert [e.id for e in await bus.query_by_correlation("c")] == ids[1::2]
    stats = await bus.stats()
    assert stats["adapter"] == "memory" and stats["publishedEvents"] == 10 and stats["activeSubscriptions"] == 1


async def test_a_failing_subscriber_never_breaks_publish_or_other_subscribers(bus):
    good = []

    async def bad(event):
        raise ValueError("x")

    async def fine(event):
        good.append(event.id)

    bus.subscribe("*", bad, name="bad", max_retries=1)
    bus.subscribe("*", fine, name="fine")
    event_id = await bus.publish("task.created", {})
    await bus.drain()
    assert good == [event_id]


async def test_history_is_bounded(settings):
    settings.EVENT_BUS_MEMORY_MAX_HISTORY = 5
    bus = MemoryBus()
    for n in range(8):
        await bus.publish("task.created", {"n": n})
    assert [e.payload["n"] for e in await bus.replay("*")] == [3, 4, 5, 6, 7]


async def test_a_raising_transform_never_breaks_publish(bus):
    def broken(event):
        raise ValueError("nope")

    async def handler(event):
        raise AssertionError("not reached")

    bus.subscribe("*", handler, name="t", transform=broken, use_dlq=True)
    await bus.publish("task.created", {})
    await bus.drain()
    assert (await bus.dead_letters())[0]["envelope"]["metadata"]["failureReason"].startswith("filter/transform")
