"""task.create: answer, Redis state, PostgreSQL row, event (SPEC §5.3.1, §18.4)."""

from __future__ import annotations

import asyncio
import re
import time

import orjson
import pytest

from claudebench.core import keys
from claudebench.core.clock import parse_iso
from claudebench.core.errors import InvalidParams
from tasks.models import Task
from tests.factories import TASK_DB

pytestmark = TASK_DB


async def test_create_queues_task_and_announces_it(call, redis, stream_events):
    out = await call("task.create", {"text": "write docs", "priority": 0})
    assert out["priority"] == 0  # SPEC §16 row 19: 0 is honoured
    assert out["status"] == "pending"
    assert out["id"].startswith("t-") and out["id"][2:].isdigit()
    assert await redis.zscore(keys.PENDING_TASKS, out["id"]) == 0
    stored = await redis.hgetall(keys.task(out["id"]))
    assert stored["text"] == "write docs" and stored["status"] == "pending" and stored["assignedTo"] == ""
    row = await Task.objects.aget(id=out["id"])
    assert row.status == "pending" and row.priority == 0 and row.metadata is None
    [event] = await stream_events("task.created")
    assert event["payload"] == out
    assert event["metadata"] == {"createdBy": pytest.importorskip("django.conf").settings.INSTANCE_ID}


async def test_concurrent_creates_get_distinct_increasing_ids(call, redis):
    outs = await asyncio.gather(*(call("task.create", {"text": f"t{i}"}) for i in range(50)))
    ids = [int(o["id"][2:]) for o in outs]
    assert len(set(ids)) == 50
    assert await Task.objects.acount() == 50


async def test_text_over_500_characters_is_refused_and_nothing_stored(call, redis):
    with pytest.raises(InvalidParams):
        await call("task.create", {"text": "x" * 501})
    assert await redis.zcard(keys.PENDING_TASKS) == 0
    assert await Task.objects.acount() == 0


async def test_500_cjk_characters_are_a_valid_text(call):
    out = await call("task.create", {"text": "字" * 500})
    assert out["text"] == "字" * 500


async def test_default_priority_metadata_and_hash_layout(call, redis):
    from django.conf import settings

    out = await call("task.create", {"text": "defaults", "metadata": {"source": "test", "n": [1, 2]}})
    assert out["priority"] == 50
    stored = await redis.hgetall(keys.task(out["id"]))
    assert await redis.type(keys.task(out["id"])) == "hash"
    assert {"id", "text", "priority", "status", "createdAt", "updatedAt", "metadata", "assignedTo", "result",
            "error", "createdAtMs"} <= set(stored)
    assert stored["createdAt"] == stored["updatedAt"] == out["createdAt"]
    assert orjson.loads(stored["metadata"]) == {"source": "test", "n": [1, 2]}
    assert (stored["result"], stored["error"], stored["assignedTo"]) == ("", "", "")
    assert await redis.type(keys.PENDING_TASKS) == "zset"
    assert await redis.zscore(keys.PENDING_TASKS, out["id"]) == -50
    row = await Task.objects.aget(id=out["id"])
    assert row.metadata == {"source": "test", "n": [1, 2]}
    assert row.created_at == parse_iso(out["createdAt"])
    queues = await redis.hgetall(keys.METRICS_QUEUES)
    assert queues["totalTasks"] == "1" and queues["pendingTasks"] == "1"
    assert settings.INSTANCE_ID  # createdBy comes from here (checked in the first test)


async def test_created_event_is_the_same_bytes_on_stream_and_channel(call, redis):
    # SPEC §18.4: the JSON written to the stream and the JSON published are the same bytes.
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.channel("task.created"))
    try:
        out = await call("task.create", {"text": "bytes"})
        published = None
        deadline = asyncio.get_running_loop().time() + 5
        while published is None and asyncio.get_running_loop().time() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message and orjson.loads(message["data"])["payload"]["id"] == out["id"]:
                published = message["data"]
    finally:
        await pubsub.aclose()
    entries = await redis.xrange(keys.stream("task.created"))
    [stream_body] = [f["data"] for _, f in entries if orjson.loads(f["data"])["payload"]["id"] == out["id"]]
    assert published == stream_body
    envelope = orjson.loads(stream_body)
    assert set(envelope) == {"id", "type", "payload", "metadata", "timestamp"}
    assert envelope["type"] == "task.created" and re.fullmatch(r"evt-\d+-[0-9a-z]{9}", envelope["id"])
    assert envelope["payload"] == {"id": out["id"], "text": "bytes", "status": "pending", "priority": 50,
                                   "createdAt": out["createdAt"]}


def counter_ahead(by_ms: int) -> int:
    """A counter value above anything this process proposes next, so the next id is value + 1."""
    from tasks import services

    return max(int(time.time() * 1000) + by_ms, services._Ids.last)


async def test_ids_continue_above_a_counter_set_by_another_process(call, redis):
    ahead = counter_ahead(10_000_000)
    await redis.set(keys.TASK_ID_COUNTER, str(ahead))
    first = await call("task.create", {"text": "after another server"})
    second = await call("task.create", {"text": "and again"})
    assert int(first["id"][2:]) == ahead + 1
    assert int(second["id"][2:]) > int(first["id"][2:])
    assert await redis.get(keys.TASK_ID_COUNTER) == second["id"][2:]
    # The counter is a plain string outside cb:task:*, which clients scan as task hashes.
    assert not keys.TASK_ID_COUNTER.startswith("cb:task:")


async def test_postgres_failure_undoes_the_redis_task_and_publishes_its_deletion(call, redis, stream_events):
    from asgiref.sync import sync_to_async

    from claudebench.core.errors import HandlerError
    from tests.factories import TaskFactory

    ahead = counter_ahead(20_000_000)
    await redis.set(keys.TASK_ID_COUNTER, str(ahead))
    await sync_to_async(TaskFactory)(id=f"t-{ahead + 1}", text="already in PostgreSQL")
    with pytest.raises(HandlerError, match="Failed to persist task"):
        await call("task.create", {"text": "collides in PostgreSQL"})
    assert await redis.exists(keys.task(f"t-{ahead + 1}")) == 0
    assert await redis.zcard(keys.PENDING_TASKS) == 0
    # task.created left with the task (DESIGN flow 1: one script); task.deleted says it is gone.
    [created] = await stream_events("task.created")
    [deleted] = await stream_events("task.deleted")
    assert created["payload"]["id"] == deleted["payload"]["id"] == f"t-{ahead + 1}"
    assert deleted["metadata"]["reason"] == "not persisted"
    assert (await Task.objects.aget(id=f"t-{ahead + 1}")).text == "already in PostgreSQL"
    # The next create gets a fresh id and works.
    out = await call("task.create", {"text": "next one"})
    assert int(out["id"][2:]) > ahead + 1


async def test_create_input_rules(call, redis):
    for params in ({}, {"text": ""}, {"text": None}, {"text": 1}, {"text": "x", "priority": -1},
                   {"text": "x", "priority": 101}, {"text": "x", "priority": 5.5}, {"text": "x", "priority": "5"},
                   {"text": "x", "metadata": []}, {"text": "x", "metadata": None}, [], "x"):
        with pytest.raises(InvalidParams):
            await call("task.create", params)
    assert await redis.zcard(keys.PENDING_TASKS) == 0
    assert await Task.objects.acount() == 0


async def test_a_burst_of_creates_all_get_ids_even_when_another_process_is_ahead(call, redis):
    """Refused proposals retry under a lock, so a burst never runs out of retries."""
    # One actor per call: the limiter (100/min per actor) is not what this test is about.
    outs = await asyncio.gather(*(call("task.create", {"text": f"burst {i}"}, session_id=f"burst-{i}")
                                  for i in range(300)))
    # A proposal from "another process" far ahead of ours forces every later one to be refused once.
    await redis.set(keys.TASK_ID_COUNTER, int(outs[-1]["id"][2:]) + 5000)
    more = await asyncio.gather(*(call("task.create", {"text": f"after {i}"}, session_id=f"after-{i}")
                                  for i in range(100)))
    ids = [o["id"] for o in outs + more]
    assert len(set(ids)) == 400
    numbers = [int(i[2:]) for i in ids[300:]]
    assert min(numbers) > int(outs[-1]["id"][2:]) + 5000
