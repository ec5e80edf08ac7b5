"""Publishing through the events bus: wire format of SPEC §4.2, exactly once, batched round trips.
(The outbox itself, buffering, backpressure and outages: test_outbox.py.)"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from claudebench.core import keys
from events.redis_bus import RedisBus

pytestmark = pytest.mark.django_db(transaction=True)


async def test_concurrent_publishes_are_each_stored_once_in_order_of_the_batch(redis):
    bus = RedisBus()
    ids = await asyncio.gather(*(bus.publish("task.created", {"n": n}) for n in range(300)))
    assert await bus.flush()
    entries = await redis.xrange(keys.stream("task.created"))
    stored = [orjson.loads(f["data"]) for _, f in entries]
    assert [e["id"] for e in stored] == list(ids)
    assert [e["payload"]["n"] for e in stored] == list(range(300))
    assert await redis.exists(*(keys.processed_event(i) for i in ids)) == 300


async def test_a_repeated_id_in_one_batch_is_delivered_once(redis):
    bus = RedisBus()
    await asyncio.gather(*(bus.publish("task.created", {"n": n}, id="evt-same") for n in range(5)))
    await bus.flush()
    assert await redis.xlen(keys.stream("task.created")) == 1
    assert await redis.get(keys.DUPLICATES_PREVENTED) == "4"


async def test_published_envelope_and_channel_message_are_the_same_bytes(redis):
    bus = RedisBus()
    pubsub = redis.pubsub()
    await pubsub.subscribe("task.created")
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    event_id = await bus.publish("task.created", {"id": "t-1"}, {"createdBy": "w"}, correlation_id="c-1",
                                 causation_id="evt-0", wait=True)
    message = None
    for _ in range(50):  # pub/sub ignores database numbers: skip other sessions' task.created
        got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if got and orjson.loads(got["data"])["id"] == event_id:
            message = got
            break
    await pubsub.aclose()
    stored = (await redis.xrange(keys.stream("task.created")))[0][1]["data"]
    assert message is not None and message["data"] == stored
    env = orjson.loads(stored)
    assert env["id"] == event_id and env["metadata"] == {"createdBy": "w", "causationId": "evt-0",
                                                          "correlationId": "c-1"}


async def test_script_cache_flush_is_survived(redis):
    bus = RedisBus()
    await bus.publish("task.created", {"n": 0}, wait=True)
    await redis.script_flush()
    await asyncio.gather(*(bus.publish("task.created", {"n": n}) for n in range(1, 4)))
    await bus.flush()
    assert await redis.xlen(keys.stream("task.created")) == 4
