"""task.assign and task.unassign: answers, hash, queues, history, PostgreSQL row, events."""

from __future__ import annotations

import orjson
import pytest
from django.conf import settings

from claudebench.core import keys
from claudebench.core.errors import HandlerError, InvalidParams
from tasks.models import Task
from tests.factories import TASK_DB

pytestmark = TASK_DB


async def test_assign_moves_the_task_to_the_instance_queue(call, redis, new_task, instance, stream_events):
    task = await new_task("assign me", 60)
    await instance("w-1")
    out = await call("task.assign", {"taskId": task["id"], "instanceId": "w-1"})
    assert set(out) == {"taskId", "instanceId", "assignedAt"}
    assert out["taskId"] == task["id"] and out["instanceId"] == "w-1"
    stored = await redis.hgetall(keys.task(task["id"]))
    assert stored["assignedTo"] == "w-1" and stored["status"] == "pending"  # kept pending on purpose
    assert stored["assignedAt"] == out["assignedAt"] == stored["updatedAt"]
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is None
    assert await redis.type(keys.instance_queue("w-1")) == "list"
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == [task["id"]]
    [entry] = await redis.lrange(keys.task_assignment_history(task["id"]), 0, -1)
    assert orjson.loads(entry)["instanceId"] == "w-1" and orjson.loads(entry)["assignedAt"] == out["assignedAt"]
    assert await redis.hget(keys.metrics_instance("w-1"), "assignedTasks") == "1"
    row = await Task.objects.aget(id=task["id"])
    assert row.assigned_to == "w-1" and row.status == "pending"
    [event] = await stream_events("task.assigned")
    assert event["payload"] == {"taskId": task["id"], "instanceId": "w-1", "previousAssignment": None}
    assert event["metadata"] == {"assignedBy": settings.INSTANCE_ID}


async def test_reassigning_to_the_same_instance_keeps_one_queue_entry(call, redis, assigned_task, stream_events):
    task_id, worker = await assigned_task("w-1")
    await call("task.assign", {"taskId": task_id, "instanceId": worker})
    assert await redis.lrange(keys.instance_queue(worker), 0, -1) == [task_id]  # SPEC §16 row 29
    assert await redis.hget(keys.metrics_instance(worker), "assignedTasks") == "1"
    assert await redis.llen(keys.task_assignment_history(task_id)) == 2
    events = await stream_events("task.assigned")
    assert [e["payload"]["previousAssignment"] for e in events] == [None, "w-1"]


async def test_task_assigned_elsewhere_is_refused(call, redis, assigned_task, instance, stream_events):
    task_id, _ = await assigned_task("w-1")
    await instance("w-2")
    with pytest.raises(HandlerError, match=rf"Task {task_id} is already assigned to w-1\."):
        await call("task.assign", {"taskId": task_id, "instanceId": "w-2"})
    assert await redis.hget(keys.task(task_id), "assignedTo") == "w-1"
    assert await redis.llen(keys.instance_queue("w-2")) == 0
    assert (await Task.objects.aget(id=task_id)).assigned_to == "w-1"
    assert len(await stream_events("task.assigned")) == 1


async def test_missing_task_or_instance_is_refused(call, redis, new_task, instance):
    await instance("w-1")
    with pytest.raises(HandlerError, match="Task not found: t-404"):
        await call("task.assign", {"taskId": "t-404", "instanceId": "w-1"})
    task = await new_task("orphan")
    with pytest.raises(HandlerError, match="Instance not found: w-ghost"):
        await call("task.assign", {"taskId": task["id"], "instanceId": "w-ghost"})
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is not None
    assert await redis.exists(keys.instance_queue("w-ghost")) == 0


@pytest.mark.parametrize(("fields", "shown"), [({"status": "OFFLINE"}, "OFFLINE"),
                                               ({"health": "unhealthy", "status": ""}, "unhealthy")])
async def test_unavailable_instance_is_refused(call, redis, new_task, instance, fields, shown):
    task = await new_task("t")
    await instance("w-down", **fields)
    with pytest.raises(HandlerError, match=rf"Instance w-down is not available \(status: {shown}\)"):
        await call("task.assign", {"taskId": task["id"], "instanceId": "w-down"})
    assert await redis.hget(keys.task(task["id"]), "assignedTo") == ""


async def test_assign_input_is_strict(call, redis):
    for params in ({"taskId": "t-1"}, {"instanceId": "w"}, {"taskId": "", "instanceId": "w"},
                   {"taskId": 1, "instanceId": "w"}, {"task_id": "t-1", "instance_id": "w"}):
        with pytest.raises(InvalidParams):
            await call("task.assign", params)


async def test_unassign_returns_the_task_to_the_pending_queue(call, redis, assigned_task, stream_events):
    task_id, worker = await assigned_task("w-1", priority=35)
    out = await call("task.unassign", {"taskId": task_id})
    assert set(out) == {"taskId", "previousAssignment", "unassignedAt"}
    assert out["previousAssignment"] == "w-1"
    stored = await redis.hgetall(keys.task(task_id))
    assert stored["assignedTo"] == "" and stored["status"] == "pending" and "assignedAt" not in stored
    assert await redis.zscore(keys.PENDING_TASKS, task_id) == -35  # SPEC §16 row 24: −priority
    assert await redis.llen(keys.instance_queue(worker)) == 0
    history = [orjson.loads(h) for h in await redis.lrange(keys.task_assignment_history(task_id), 0, -1)]
    assert history[-1]["action"] == "unassigned" and history[-1]["instanceId"] == "w-1"
    assert await redis.hget(keys.metrics_instance(worker), "assignedTasks") == "0"
    row = await Task.objects.aget(id=task_id)
    assert row.assigned_to is None and row.status == "pending"
    [event] = await stream_events("task.unassigned")
    assert event["payload"] == {"taskId": task_id, "previousAssignment": "w-1"}
    assert event["metadata"] == {"unassignedBy": settings.INSTANCE_ID, "unassignedAt": out["unassignedAt"]}


async def test_unassign_of_an_in_progress_task(call, redis, instance, new_task):
    task = await new_task("claimed")
    await instance("w-1")
    await call("task.claim", {"workerId": "w-1"})
    await call("task.unassign", {"taskId": task["id"]})
    assert await redis.hget(keys.task(task["id"]), "status") == "pending"
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) == -50
    assert (await Task.objects.aget(id=task["id"])).status == "pending"


async def test_unassign_refusals(call, redis, new_task, assigned_task, stream_events):
    with pytest.raises(HandlerError, match="Task not found: t-1"):
        await call("task.unassign", {"taskId": "t-1"})
    task = await new_task("free")
    with pytest.raises(HandlerError, match=rf"Task {task['id']} is not currently assigned"):
        await call("task.unassign", {"taskId": task["id"]})
    task_id, worker = await assigned_task("w-1")
    await call("task.complete", {"id": task_id})
    with pytest.raises(HandlerError, match=rf"Cannot unassign task {task_id} with status completed"):
        await call("task.unassign", {"taskId": task_id})
    assert await redis.hget(keys.task(task_id), "assignedTo") == worker
    assert await redis.zscore(keys.PENDING_TASKS, task_id) is None
    assert await stream_events("task.unassigned") == []
