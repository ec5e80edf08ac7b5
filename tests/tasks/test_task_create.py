"""task.create: answer, Redis state, PostgreSQL row, event (SPEC §5.3.1, §18.4)."""

from __future__ import annotations

import asyncio

import pytest

from claudebench.core import keys
from claudebench.core.errors import InvalidParams
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


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
