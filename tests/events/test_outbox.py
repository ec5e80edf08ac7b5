"""The buffered publish of the events bus (events/outbox.py): returns before the event is stored,
keeps order and exactly-once, holds events while Redis is unreachable, bounded by
CB_BUS_OUTBOX_MAX."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from redis import exceptions as rexc

from claudebench.core import keys
from claudebench.core.redis import close_redis, get_redis
from events import outbox
from events.memory_bus import MemoryBus
from events.redis_bus import RedisBus
from tests.own_valkey import OwnValkey
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _stored(entries) -> list[dict]:
    return [orjson.loads(f["data"]) for _, f in entries]


async def test_buffered_publishes_land_once_in_publish_order_on_both_transports(redis):
    bus = RedisBus()
    types = ["test.outbox.a", "test.outbox.b"]
    pubsub = redis.pubsub()
    await pubsub.subscribe(*types)
    for _ in types:
        await pubsub.get_message(timeout=1)  # the subscribe confirmations
    ids = []
    for n in range(2500):  # more than one batch
        ids.append(await bus.publish(types[n % 2], {"n": n}))
    assert outbox.get().pending > 0  # returned before they were stored
    assert await bus.flush()
    assert outbox.get().pending == 0
    for i, t in enumerate(types):
        stored = _stored(await redis.xrange(keys.stream(t)))
        assert [e["id"] for e in stored] == ids[i::2]
        assert [e["payload"]["n"] for e in stored] == list(range(i, 2500, 2))
    assert await redis.exists(*(keys.processed_event(i) for i in ids)) == 2500
    mine, heard = set(ids), []
    deadline = time.monotonic() + 10
    while len(heard) < len(ids) and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message and (eid := orjson.loads(message["data"])["id"]) in mine:  # other sessions share channels
            heard.append(eid)
    await pubsub.aclose()
    assert heard == ids
    counters = outbox.stats()
    assert counters["stored"] == 2500 and counters["failed"] == 0 and counters["pending"] == 0


async def test_wait_true_returns_once_stored(redis):
    event_id = await RedisBus().publish("test.outbox.a", {"n": 1}, wait=True)
    [env] = _stored(await redis.xrange(keys.stream("test.outbox.a")))
    assert env["id"] == event_id


async def test_wait_true_after_buffered_ones_keeps_the_order(redis):
    bus = RedisBus()
    first = [await bus.publish("test.outbox.a", {"n": n}) for n in range(50)]
    last = await bus.publish("test.outbox.a", {"n": 50}, wait=True)
    assert [e["id"] for e in _stored(await redis.xrange(keys.stream("test.outbox.a")))] == first + [last]


async def test_a_full_outbox_makes_publish_wait_and_loses_nothing(redis, settings):
    settings.CB_BUS_OUTBOX_MAX = 5
    bus, box = RedisBus(), outbox.get()
    ids, sizes = [], []
    for n in range(5):  # room: these return at once, nothing sent yet
        ids.append(await bus.publish("test.outbox.a", {"n": n}))
    assert box.size == 5
    sixth = asyncio.create_task(bus.publish("test.outbox.a", {"n": 5}))
    await asyncio.sleep(0)
    assert not sixth.done()  # waits for room
    ids.append(await sixth)

    async def publisher(base: int) -> None:
        for n in range(base, base + 100):
            await bus.publish("test.outbox.a", {"n": n})
            sizes.append(box.size)

    await asyncio.gather(publisher(1000), publisher(2000))
    assert await bus.flush()
    assert max(sizes) <= 5
    stored = _stored(await redis.xrange(keys.stream("test.outbox.a")))
    assert [e["id"] for e in stored[:6]] == ids
    numbers = [e["payload"]["n"] for e in stored[6:]]
    assert sorted(numbers) == [*range(1000, 1100), *range(2000, 2100)]  # each once
    assert [n for n in numbers if n < 2000] == list(range(1000, 1100))  # each publisher's order kept
    assert [n for n in numbers if n >= 2000] == list(range(2000, 2100))


async def test_a_publish_cancelled_while_waiting_for_room_is_not_published(redis, settings):
    settings.CB_BUS_OUTBOX_MAX = 1
    bus = RedisBus()
    kept = await bus.publish("test.outbox.a", {"n": 0})
    waiting = asyncio.create_task(bus.publish("test.outbox.a", {"n": 1}))
    await asyncio.sleep(0)
    flushed = asyncio.create_task(bus.flush(5))
    await asyncio.sleep(0)
    waiting.cancel()
    assert await flushed  # its flush waiter moved to the event before it
    assert [e["id"] for e in _stored(await redis.xrange(keys.stream("test.outbox.a")))] == [kept]


async def test_a_repeated_id_is_still_dropped(redis):
    bus = RedisBus()
    await bus.publish("test.outbox.a", {"n": 1}, id="evt-1-dup")
    await bus.publish("test.outbox.a", {"n": 2}, id="evt-1-dup")
    await bus.flush()
    assert await bus.publish("test.outbox.a", {"n": 3}, id="evt-1-dup", wait=True) == "evt-1-dup"
    assert [e["payload"] for e in _stored(await redis.xrange(keys.stream("test.outbox.a")))] == [{"n": 1}]
    assert await redis.get(keys.DUPLICATES_PREVENTED) == "2"
    assert outbox.stats()["duplicates"] == 2


@pytest.mark.parametrize("payload", [{"x": object()}, {"x": {1, 2}}])
async def test_a_payload_json_cannot_carry_raises_at_publish(redis, payload):
    with pytest.raises(TypeError):
        await RedisBus().publish("test.outbox.a", payload)
    assert outbox.stats()["pending"] == 0


async def test_a_script_error_drops_that_event_only(redis):
    await redis.set(keys.stream("test.outbox.bad"), "not a stream")  # XADD answers WRONGTYPE
    bus = RedisBus()
    good = [await bus.publish("test.outbox.a", {"n": 0}),
            await bus.publish("test.outbox.bad", {"n": 1}),
            await bus.publish("test.outbox.a", {"n": 2})]
    assert await bus.flush()
    assert [e["id"] for e in _stored(await redis.xrange(keys.stream("test.outbox.a")))] == [good[0], good[2]]
    assert outbox.stats()["failed"] == 1
    with pytest.raises(rexc.ResponseError):
        await bus.publish("test.outbox.bad", {"n": 3}, wait=True)


async def test_a_partition_key_is_recorded_after_storage(redis):
    bus = RedisBus()
    ids = [await bus.publish("test.outbox.a", {"n": n}, partition_key="p-1") for n in range(3)]
    await bus.flush()
    items = [orjson.loads(x) for x in await redis.lrange(keys.partition("p-1"), 0, -1)]
    assert [i["id"] for i in items] == ids
    assert orjson.loads(items[0]["data"])["metadata"] == {"partitionKey": "p-1"}


@pytest.fixture
def own_valkey(tmp_path_factory, settings):
    valkey = OwnValkey(tmp_path_factory.mktemp("vk"))
    valkey.start()
    settings.REDIS_URL = f"unix://{valkey.socket}?db=0"
    yield valkey
    valkey.stop()


async def test_events_published_while_redis_is_down_land_once_when_it_is_back(own_valkey, caplog):
    await close_redis()  # this loop's client now goes to own_valkey
    bus = RedisBus()
    await bus.publish("test.outbox.a", {"n": -1}, wait=True)
    own_valkey.stop()
    ids = [await bus.publish("test.outbox.a", {"n": n}) for n in range(20)]  # no error: held
    await wait_until(lambda: outbox.stats()["outages"] == 1, what="the outage noticed")
    with pytest.raises(rexc.ConnectionError):  # wait=True reports the failure, as core publish does
        await bus.publish("test.outbox.a", {"n": 99}, wait=True)
    assert not await bus.flush(0.3)
    assert outbox.stats()["pending"] == 20
    own_valkey.start()  # an empty server: only what the outbox held arrives
    assert await bus.flush(20)
    stored = _stored(await get_redis().xrange(keys.stream("test.outbox.a")))
    assert [e["id"] for e in stored] == ids
    counters = outbox.stats()
    assert counters["outages"] == 1 and counters["failed"] == 1 and counters["resent"] >= 20
    unreachable = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # one warning per outage
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_close_drops_what_it_cannot_store_within_its_time_limit(own_valkey):
    await close_redis()
    bus = RedisBus()
    own_valkey.stop()
    await bus.publish("test.outbox.a", {"n": 0})
    assert await outbox.close(0.3) == 1
    assert outbox.stats()["pending"] == 0 and outbox.stats()["failed"] == 1


async def test_lifespan_shutdown_flushes_the_outbox(redis):
    from claudebench.asgi import Lifespan

    bus = RedisBus()
    ids = [await bus.publish("test.outbox.a", {"n": n}) for n in range(3000)]
    assert outbox.get().pending > 0
    await Lifespan().shutdown()  # closes this loop's Redis client last
    assert outbox.get().pending == 0
    stored = _stored(await get_redis().xrange(keys.stream("test.outbox.a")))
    assert [e["id"] for e in stored] == ids


async def test_memory_bus_takes_wait_and_flush():
    bus = MemoryBus()
    event_id = await bus.publish("task.created", {"n": 1}, wait=True)
    assert await bus.flush()
    assert [e.id for e in bus.history] == [event_id]
