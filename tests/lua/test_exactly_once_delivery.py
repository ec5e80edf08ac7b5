"""exactly_once_delivery.lua: one marker key per event id, bounded stream, same bytes on both
transports (SPEC §4.2, §4.6, §7.1)."""

from __future__ import annotations

import asyncio

import orjson

from claudebench.core import bus, keys, scripts
from claudebench.core.clock import event_id

TYPE = "test.wire.happened"


async def deliver(redis, eid: str, body: str, *, maxlen: int = 10_000, stream_ttl: int = 86_400,
                  marker_ttl: int = 86_400):
    return await redis.register_script(scripts.SOURCES["exactly_once_delivery"])(
        keys=[keys.processed_event(eid), keys.DUPLICATES_PREVENTED, keys.stream(TYPE)],
        args=[eid, body, keys.channel(TYPE), maxlen, stream_ttl, marker_ttl],
    )


async def test_first_delivery_writes_marker_stream_and_ttls(redis):
    eid = event_id()
    status, entry = await deliver(redis, eid, '{"x":1}', stream_ttl=500, marker_ttl=700)
    assert status == 0
    [(entry_id, fields)] = await redis.xrange(keys.stream(TYPE))
    assert entry_id == entry and fields == {"data": '{"x":1}'}
    assert await redis.get(keys.processed_event(eid)) == "1"
    assert 0 < await redis.ttl(keys.processed_event(eid)) <= 700
    assert 0 < await redis.ttl(keys.stream(TYPE)) <= 500
    assert await redis.exists("cb:processed:events") == 0  # no ever-growing set (SPEC §4.6)


async def test_duplicate_id_is_dropped_and_counted(redis):
    eid = event_id()
    await deliver(redis, eid, '{"n":1}')
    assert await deliver(redis, eid, '{"n":2}') == [1, 1]
    assert await deliver(redis, eid, '{"n":3}') == [1, 2]
    entries = await redis.xrange(keys.stream(TYPE))
    assert [f["data"] for _, f in entries] == ['{"n":1}']
    assert await redis.get(keys.DUPLICATES_PREVENTED) == "2"
    assert 0 < await redis.ttl(keys.DUPLICATES_PREVENTED) <= 3600
    # Another id is delivered normally.
    assert (await deliver(redis, event_id(), '{"n":4}'))[0] == 0


async def test_stream_is_trimmed_to_about_maxlen(redis):
    # MAXLEN ~ trims whole macro nodes, so the length stays near the bound rather than exactly on it.
    for n in range(600):
        await deliver(redis, f"evt-1-{n:09d}", orjson.dumps({"n": n}).decode(), maxlen=50)
    length = await redis.xlen(keys.stream(TYPE))
    assert 50 <= length < 300
    newest = await redis.xrevrange(keys.stream(TYPE), count=1)
    assert orjson.loads(newest[0][1]["data"]) == {"n": 599}


async def _first_message_with(pubsub, eid: str, timeout_s: float = 5.0) -> str | None:
    """The first message carrying our event id (other sessions may publish on the same channel)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message and orjson.loads(message["data"]).get("id") == eid:
            return message["data"]
    return None


async def test_stream_entry_bytes_equal_the_published_bytes(redis):
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.channel(TYPE))  # subscribe first; pub/sub ignores database numbers
    try:
        eid = await bus.publish(TYPE, {"text": "é 🚀 <b>\n", "n": 1.5}, {"who": "test"})
        published = await _first_message_with(pubsub, eid)
        assert published is not None
        # A duplicate publish of the same id is neither written nor published again.
        await bus.publish(TYPE, {"text": "again"}, id=eid)
        assert await _first_message_with(pubsub, eid, timeout_s=0.3) is None
    finally:
        await pubsub.aclose()
    entries = [f["data"] for _, f in await redis.xrange(keys.stream(TYPE))]
    assert entries == [published]
    envelope = orjson.loads(published)
    assert envelope["id"] == eid and envelope["type"] == TYPE
    assert envelope["payload"] == {"text": "é 🚀 <b>\n", "n": 1.5} and envelope["metadata"] == {"who": "test"}


async def test_bus_publish_uses_settings_for_stream_bounds(redis, settings):
    settings.CB_STREAM_TTL_S = 123
    settings.CB_PROCESSED_EVENT_TTL_S = 456
    eid = await bus.publish(TYPE, {"k": 1})
    assert 0 < await redis.ttl(keys.stream(TYPE)) <= 123
    assert 0 < await redis.ttl(keys.processed_event(eid)) <= 456


async def test_event_ids_are_unique_under_concurrency(redis):
    ids = await asyncio.gather(*(bus.publish(TYPE, {"n": n}) for n in range(200)))
    assert len(set(ids)) == 200
    assert await redis.xlen(keys.stream(TYPE)) == 200
    assert await redis.get(keys.DUPLICATES_PREVENTED) is None


async def test_the_stream_ttl_is_renewed_once_it_ran_down_by_a_tenth(redis):
    await deliver(redis, event_id(), '{"n":1}', stream_ttl=500)
    assert 490 < await redis.ttl(keys.stream(TYPE)) <= 500
    await redis.expire(keys.stream(TYPE), 460)  # 40 s later: within the tenth, left alone
    await deliver(redis, event_id(), '{"n":2}', stream_ttl=500)
    assert await redis.ttl(keys.stream(TYPE)) <= 460
    await redis.expire(keys.stream(TYPE), 440)  # 60 s later: renewed
    await deliver(redis, event_id(), '{"n":3}', stream_ttl=500)
    assert 490 < await redis.ttl(keys.stream(TYPE)) <= 500
    await redis.expire(keys.stream(TYPE), 4)  # a short TTL is renewed by every event
    await deliver(redis, event_id(), '{"n":4}', stream_ttl=5)
    assert await redis.ttl(keys.stream(TYPE)) == 5
