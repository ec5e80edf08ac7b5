"""task.update: answer, hash, queue membership (SPEC §9.2 policy), PostgreSQL row, event."""

from __future__ import annotations

import orjson
import pytest
from django.conf import settings

from claudebench.core import keys
from claudebench.core.errors import HandlerError, InvalidParams
from tasks.models import Task
from tests.factories import TASK_DB

pytestmark = TASK_DB


async def test_update_changes_text_and_priority_everywhere(call, redis, new_task, stream_events):
    task = await new_task("before", 10)
    out = await call("task.update", {"id": task["id"], "updates": {"text": "after\n  🚀", "priority": 90}})
    assert set(out) == {"id", "text", "status", "priority", "createdAt", "updatedAt"}
    assert out["text"] == "after\n  🚀" and out["priority"] == 90 and out["status"] == "pending"
    assert out["createdAt"] == task["createdAt"] and out["updatedAt"] >= task["createdAt"]
    stored = await redis.hgetall(keys.task(task["id"]))
    assert stored["text"] == "after\n  🚀" and stored["priority"] == "90" and stored["updatedAt"] == out["updatedAt"]
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) == -90  # re-scored while pending
    row = await Task.objects.aget(id=task["id"])
    assert (row.text, row.priority, row.status) == ("after\n  🚀", 90, "pending")
    [event] = await stream_events("task.updated")
    assert event["payload"] == out
    assert event["metadata"] == {"updatedBy": settings.INSTANCE_ID, "changes": ["text", "priority"]}


async def test_priority_zero_is_kept_on_update(call, redis, new_task):
    task = await new_task("p", 50)
    out = await call("task.update", {"id": task["id"], "updates": {"priority": 0}})
    assert out["priority"] == 0
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) == 0


async def test_metadata_is_merged_shallowly(call, redis, new_task, stream_events):
    task = await new_task("m", metadata={"a": 1, "b": {"deep": True}, "keep": "x"})
    await call("task.update", {"id": task["id"], "updates": {"metadata": {"b": {"other": 1}, "c": [1, 2]}}})
    merged = {"a": 1, "b": {"other": 1}, "keep": "x", "c": [1, 2]}
    assert orjson.loads(await redis.hget(keys.task(task["id"]), "metadata")) == merged
    assert (await Task.objects.aget(id=task["id"])).metadata == merged
    [event] = await stream_events("task.updated")
    assert event["metadata"]["changes"] == ["metadata"]


async def test_status_leaving_pending_leaves_the_pending_queue(call, redis, new_task):
    task = await new_task("s", 40)
    await call("task.update", {"id": task["id"], "updates": {"status": "in_progress"}})
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is None
    # Back to pending while unassigned: queued again with score −priority (SPEC §9.2 policy).
    await call("task.update", {"id": task["id"], "updates": {"status": "pending"}})
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) == -40
    # A priority change while not pending does not put it back on the queue.
    await call("task.update", {"id": task["id"], "updates": {"status": "failed"}})
    await call("task.update", {"id": task["id"], "updates": {"priority": 99}})
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is None
    assert (await Task.objects.aget(id=task["id"])).status == "failed"


async def test_priority_change_of_an_assigned_pending_task_does_not_requeue_it(call, redis, assigned_task):
    task_id, worker = await assigned_task()
    await call("task.update", {"id": task_id, "updates": {"priority": 77}})
    assert await redis.zscore(keys.PENDING_TASKS, task_id) is None  # SPEC §16 row 28
    assert await redis.lrange(keys.instance_queue(worker), 0, -1) == [task_id]


async def test_completing_through_update_sets_completed_at_and_leaves_the_instance_queue(
    call, redis, assigned_task,
):
    task_id, worker = await assigned_task()
    out = await call("task.update", {"id": task_id, "updates": {"status": "completed"}})
    stored = await redis.hgetall(keys.task(task_id))
    assert stored["status"] == "completed" and stored["completedAt"] == out["updatedAt"]
    assert await redis.lrange(keys.instance_queue(worker), 0, -1) == []
    assert await redis.zscore(keys.PENDING_TASKS, task_id) is None
    row = await Task.objects.aget(id=task_id)
    assert row.status == "completed" and row.completed_at is not None


async def test_completed_task_refuses_a_new_status(call, redis, new_task):
    task = await new_task("done")
    await call("task.update", {"id": task["id"], "updates": {"status": "completed"}})
    with pytest.raises(HandlerError, match="Cannot change status of completed task to pending"):
        await call("task.update", {"id": task["id"], "updates": {"status": "pending"}})
    assert await redis.hget(keys.task(task["id"]), "status") == "completed"
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is None
    assert (await Task.objects.aget(id=task["id"])).status == "completed"
    # Same status again and non-status changes are fine.
    await call("task.update", {"id": task["id"], "updates": {"status": "completed", "text": "done!"}})


async def test_project_tasks_may_leave_completed(call, redis, new_task):
    for metadata in ({"projectId": "proj-1"}, {"type": "project"}):
        task = await new_task("project", metadata=metadata)
        await call("task.update", {"id": task["id"], "updates": {"status": "completed"}})
        out = await call("task.update", {"id": task["id"], "updates": {"status": "pending"}})
        assert out["status"] == "pending"
        assert await redis.hget(keys.task(task["id"]), "completedAt") is None


async def test_failed_task_can_be_retried(call, redis, new_task):
    task = await new_task("retry", 5)
    await call("task.update", {"id": task["id"], "updates": {"status": "failed"}})
    out = await call("task.update", {"id": task["id"], "updates": {"status": "pending"}})
    assert out["status"] == "pending"
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) == -5
    assert (await Task.objects.aget(id=task["id"])).completed_at is None


async def test_unknown_task_is_an_error_and_publishes_nothing(call, redis, stream_events):
    with pytest.raises(HandlerError, match="Task not found"):
        await call("task.update", {"id": "t-123", "updates": {"text": "x"}})
    assert await stream_events("task.updated") == []
    assert await redis.exists(keys.task("t-123")) == 0


async def test_bad_updates_are_invalid_params_and_change_nothing(call, redis, new_task):
    task = await new_task("intact", 30)
    for updates in ({"status": "done"}, {"priority": "5"}, {"priority": 101}, {"text": ""}, {"text": "x" * 501},
                    {"status": None}, {"metadata": "x"}, {"text": 5}):
        with pytest.raises(InvalidParams):
            await call("task.update", {"id": task["id"], "updates": updates})
    for params in ({"id": task["id"]}, {"id": "", "updates": {}}, {"updates": {}}, {"id": task["id"], "updates": []}):
        with pytest.raises(InvalidParams):
            await call("task.update", params)
    stored = await redis.hgetall(keys.task(task["id"]))
    assert (stored["text"], stored["priority"], stored["status"]) == ("intact", "30", "pending")
    assert stored["updatedAt"] == task["createdAt"]


async def test_unknown_update_keys_are_dropped(call, redis, new_task):
    task = await new_task("k")
    out = await call("task.update", {"id": task["id"], "updates": {"assignedTo": "w-9", "text": "k2"}})
    assert out["text"] == "k2"
    assert await redis.hget(keys.task(task["id"]), "assignedTo") == ""


async def test_retrying_a_failed_assigned_task_returns_it_to_its_instance_queue(call, redis, assigned_task):
    task_id, worker = await assigned_task()
    await call("task.update", {"id": task_id, "updates": {"status": "failed"}})
    assert await redis.llen(keys.instance_queue(worker)) == 0
    await call("task.update", {"id": task_id, "updates": {"status": "pending"}})
    assert await redis.lrange(keys.instance_queue(worker), 0, -1) == [task_id]
    assert await redis.zscore(keys.PENDING_TASKS, task_id) is None
    # The worker can complete it again.
    out = await call("task.complete", {"id": task_id, "result": "second try"})
    assert out["status"] == "completed" and await redis.llen(keys.instance_queue(worker)) == 0
