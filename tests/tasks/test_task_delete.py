"""task.delete: every Redis key of the task, its queues, PostgreSQL rows, the event (SPEC §7.28)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from claudebench.core import keys
from claudebench.core.errors import HandlerError, InvalidParams
from tasks import services
from tasks.models import Task, TaskAttachment
from tests.factories import TASK_DB, TaskAttachmentFactory, TaskFactory

pytestmark = TASK_DB


async def task_keys(redis, task_id: str) -> list[str]:
    found = [k async for k in redis.scan_iter(match=f"*{task_id}*")]
    return sorted(found)


async def test_delete_removes_everything(call, redis, assigned_task, stream_events):
    task_id, worker = await assigned_task("w-1")
    await call("task.complete", {"id": task_id, "result": {"r": 1}})  # result attachment + completion history
    await services.attachment_put(redis, task_id=task_id, key="notes", type="json", value=[1], created_by="t")
    assert len(await task_keys(redis, task_id)) >= 6  # hash, index, 2 attachments, 2 histories
    out = await call("task.delete", {"id": task_id})
    assert set(out) == {"id", "deleted", "deletedAt"}
    assert out["id"] == task_id and out["deleted"] is True
    assert await task_keys(redis, task_id) == []
    assert await redis.llen(keys.instance_queue(worker)) == 0
    metrics = await redis.hgetall(keys.METRICS_TASK_DELETE)
    assert metrics["total"] == "1" and metrics["completed"] == "1" and metrics["lastDeleted"] == out["deletedAt"]
    assert not await Task.objects.filter(id=task_id).aexists()
    assert not await TaskAttachment.objects.filter(task_id=task_id).aexists()
    [event] = await stream_events("task.deleted")
    assert event["payload"] == {"id": task_id, "deletedAt": out["deletedAt"], "deletedBy": settings.INSTANCE_ID}
    assert event["metadata"]["instanceId"] == settings.INSTANCE_ID and event["metadata"]["eventId"].startswith("evt-")


async def test_delete_pending_task_leaves_the_pending_queue(call, redis, new_task):
    keep = await new_task("keep")
    gone = await new_task("gone")
    await call("task.delete", {"id": gone["id"]})
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1) == [keep["id"]]
    assert await redis.exists(keys.task(gone["id"])) == 0
    assert await redis.exists(keys.task(keep["id"])) == 1
    assert [t.id async for t in Task.objects.all()] == [keep["id"]]


async def test_delete_assigned_task_leaves_its_instance_queue(call, redis, assigned_task, new_task, instance):
    task_id, worker = await assigned_task("w-1")
    other = await new_task("other")
    await call("task.assign", {"taskId": other["id"], "instanceId": worker})
    await call("task.delete", {"id": task_id})
    assert await redis.lrange(keys.instance_queue(worker), 0, -1) == [other["id"]]


async def test_stray_pending_queue_entry_is_removed_whatever_the_status(call, redis, new_task):
    # SPEC §7.28: always ZREM (the original only did so for pending tasks).
    task = await new_task("stray")
    await call("task.update", {"id": task["id"], "updates": {"status": "in_progress"}})
    await redis.zadd(keys.PENDING_TASKS, {task["id"]: -50})
    await call("task.delete", {"id": task["id"]})
    assert await redis.zcard(keys.PENDING_TASKS) == 0


async def test_task_only_in_postgres_is_deleted_there(call, redis, stream_events):
    @sync_to_async
    def make() -> str:
        attachment = TaskAttachmentFactory(task=TaskFactory(id="t-555"))
        return attachment.task_id

    task_id = await make()
    out = await call("task.delete", {"id": task_id})
    assert out["deleted"] is True
    assert not await Task.objects.filter(id=task_id).aexists()
    assert not await TaskAttachment.objects.filter(task_id=task_id).aexists()
    assert [e["payload"]["id"] for e in await stream_events("task.deleted")] == [task_id]


async def test_unknown_task_is_not_found(call, redis, new_task, stream_events):
    keep = await new_task("keep")
    with pytest.raises(HandlerError, match="Task not found"):
        await call("task.delete", {"id": "t-1"})
    assert await stream_events("task.deleted") == []
    assert await redis.exists(keys.task(keep["id"])) == 1
    assert await redis.exists(keys.METRICS_TASK_DELETE) == 0


async def test_delete_twice(call, redis, new_task):
    task = await new_task("once")
    await call("task.delete", {"id": task["id"]})
    with pytest.raises(HandlerError, match="Task not found"):
        await call("task.delete", {"id": task["id"]})


async def test_delete_input_is_strict(call, redis):
    for params in ({}, {"id": ""}, {"id": 5}, {"id": None}, {"taskId": "t-1"}):
        with pytest.raises(InvalidParams):
            await call("task.delete", params)
