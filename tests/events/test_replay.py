"""Replay, recent and correlation queries over the streams (SPEC §14.4 items 7–8)."""

from __future__ import annotations

import pytest

from claudebench.core import bus as core_bus
from claudebench.core import keys
from claudebench.core.errors import InvalidParams
from events.redis_bus import RedisBus

pytestmark = pytest.mark.django_db(transaction=True)


async def test_replay_from_an_id_returns_the_following_events_in_stream_order(redis):
    ids = [await core_bus.publish("task.created", {"n": n}) for n in range(10)]
    entries = await redis.xrange(keys.stream("task.created"))
    after = entries[3][0]
    found = await RedisBus().replay("task.created", after=after)
    assert [e.id for e in found] == ids[4:]
    assert [e.entry_id for e in found] == [entry_id for entry_id, _ in entries[4:]]
    assert [e.id for e in await RedisBus().replay("task.created", after=after, limit=2)] == ids[4:6]


async def test_replay_of_a_pattern_merges_streams_in_entry_order(redis):
    order = []
    for n in range(4):
        order.append(await core_bus.publish("task.created", {"n": n}))
        order.append(await core_bus.publish("task.attachment.deleted", {"n": n}))
    await core_bus.publish("swarm.assigned", {})
    await core_bus.record_request("task.create", {"text": "x"}, client_id=None)
    found = await RedisBus().replay("task.*")
    # Across streams, order is by entry id (Redis server time, ms); within a stream it is exact.
    assert sorted(e.id for e in found) == sorted(order)
    assert [e.entry_id for e in found] == sorted((e.entry_id for e in found), key=lambda i: tuple(map(int, i.split("-"))))
    for event_type in ("task.created", "task.attachment.deleted"):
        assert [e.id for e in found if e.type == event_type] == [i for i in order if i in
                                                                  {x.id for x in found if x.type == event_type}]
    with_requests = await RedisBus().replay("task.*", include_requests=True)
    # The request record joins at its own entry id (it may share a millisecond with the events).
    assert len(with_requests) == len(order) + 1 and [e.kind for e in with_requests].count("request") == 1


async def test_replay_by_time_window(redis):
    await core_bus.publish("task.created", {"n": 0})
    entries = await redis.xrange(keys.stream("task.created"))
    first_ms = int(entries[0][0].split("-")[0])
    assert len(await RedisBus().replay("task.created", since_ms=first_ms)) == 1
    assert await RedisBus().replay("task.created", since_ms=first_ms + 60_000) == []
    assert await RedisBus().replay("task.created", until_ms=first_ms - 1) == []


async def test_replay_handler_validates_and_answers_wire_shape(redis, call):
    event_id = await core_bus.publish("task.created", {"id": "t-1"}, {"createdBy": "w"})
    out = await call("events.replay", {"pattern": "task.*"})
    assert out["count"] == 1
    event = out["events"][0]
    assert event["id"] == event_id and event["type"] == "task.created"
    assert event["payload"] == {"id": "t-1"} and event["metadata"] == {"createdBy": "w"}
    assert event["streamId"].count("-") == 1
    for bad in ({"pattern": "task*"}, {"pattern": "task.*", "after": "yesterday"}, {"pattern": "*", "limit": 0},
                {"pattern": "*", "limit": "5"}, {}):
        with pytest.raises(InvalidParams):
            await call("events.replay", bad)


async def test_recent_is_newest_first_and_skips_request_records(redis, call):
    ids = [await core_bus.publish("task.created", {"n": n}) for n in range(3)]
    other = await core_bus.publish("hook.pre_tool.executed", {})
    await core_bus.record_request("task.create", {"text": "t"}, client_id=None)
    out = await call("events.recent", {"pattern": "task.created", "limit": 10})
    assert [e["id"] for e in out["events"]] == ids[::-1]
    everything = await call("events.recent", {"limit": 10})
    assert sorted(e["id"] for e in everything["events"]) == sorted([*ids, other])  # no request record
    assert [e["id"] for e in (await call("events.recent", {"pattern": "task.*", "limit": 1}))["events"]] == [ids[2]]


async def test_query_by_correlation_id_follows_a_request_across_streams(redis, call):
    a = await core_bus.publish("task.created", {}, correlation_id="corr-1")
    await core_bus.publish("task.created", {}, correlation_id="corr-2")
    b = await core_bus.publish("task.assigned", {}, correlation_id="corr-1")
    out = await call("events.correlation", {"correlationId": "corr-1"})
    # Across streams the order is by entry id to the millisecond; a and b may share one.
    assert sorted(e["id"] for e in out["events"]) == sorted([a, b])
    with pytest.raises(InvalidParams):
        await call("events.correlation", {"correlationId": ""})
