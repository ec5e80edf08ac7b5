"""task.complete: with and without result, the result attachment, refusals (SPEC §5.3.1, §7.11)."""

from __future__ import annotations

import orjson
import pytest

from claudebench.core import keys
from claudebench.core.errors import HandlerError, InvalidParams
from tasks.models import Task, TaskAttachment
from tests.factories import TASK_DB

pytestmark = TASK_DB


async def test_complete_with_result(call, redis, assigned_task, stream_events):
    task_id, worker = await assigned_task("w-1")
    result = {"summary": "done", "files": ["a.py"], "score": 0.5}
    out = await call("task.complete", {"id": task_id, "result": result})
    assert set(out) == {"id", "status", "completedAt"}
    assert out["id"] == task_id and out["status"] == "completed"
    stored = await redis.hgetall(keys.task(task_id))
    assert stored["status"] == "completed" and stored["completedAt"] == out["completedAt"]
    assert orjson.loads(stored["result"]) == result
    duration = int(stored["duration"])
    assert duration >= 0
    assert await redis.llen(keys.instance_queue(worker)) == 0
    assert await redis.zscore(keys.PENDING_TASKS, task_id) is None
    [entry] = await redis.lrange(keys.task_completion_history(task_id), 0, -1)
    assert orjson.loads(entry) == {"status": "completed", "completedAt": out["completedAt"], "completedBy": worker,
                                   "duration": duration}
    assert await redis.hget(keys.metrics_instance(worker), "tasksCompleted") == "1"
    # The result is also an attachment with key "result" (Redis hash + index, PostgreSQL row).
    attachment = await redis.hgetall(keys.task_attachment(task_id, "result"))
    assert attachment["type"] == "json" and orjson.loads(attachment["value"]) == result
    assert await redis.zrange(keys.task_attachments(task_id), 0, -1) == ["result"]
    row = await Task.objects.aget(id=task_id)
    assert row.status == "completed" and row.completed_at is not None and row.result == result
    assert row.metadata["completedBy"] == worker and row.metadata["duration"] == duration
    assert row.metadata["resultSize"] == len(orjson.dumps(result))
    stored_attachment = await TaskAttachment.objects.aget(task_id=task_id, key="result")
    assert stored_attachment.type == "json" and stored_attachment.value == result
    assert stored_attachment.id == attachment["id"]
    [event] = await stream_events("task.completed")
    assert event["payload"] == {"id": task_id, "status": "completed", "duration": duration}
    assert event["metadata"] == {"completedBy": worker}


async def test_complete_without_result_is_completed_not_failed(call, redis, assigned_task, stream_events):
    task_id, _ = await assigned_task("w-1")
    out = await call("task.complete", {"taskId": task_id})  # SPEC §16 row 20 (deliberate divergence)
    assert out["status"] == "completed"
    assert await redis.hget(keys.task(task_id), "status") == "completed"
    assert await redis.exists(keys.task_attachment(task_id, "result")) == 0
    assert await redis.zcard(keys.task_attachments(task_id)) == 0
    row = await Task.objects.aget(id=task_id)
    assert row.status == "completed" and row.result is None and row.metadata["resultSize"] == 0
    assert not await TaskAttachment.objects.filter(task_id=task_id).aexists()
    assert (await stream_events("task.completed"))[0]["payload"]["status"] == "completed"


async def test_worker_id_is_recorded_as_completer(call, redis, assigned_task, stream_events):
    task_id, _ = await assigned_task("w-1")
    await call("task.complete", {"id": task_id, "workerId": "w-helper", "result": "ok"})
    assert (await Task.objects.aget(id=task_id)).metadata["completedBy"] == "w-helper"
    assert (await stream_events("task.completed"))[0]["metadata"] == {"completedBy": "w-helper"}


async def test_string_result_that_is_json_is_stored_parsed(call, redis, assigned_task):
    task_id, _ = await assigned_task("w-1")
    await call("task.complete", {"id": task_id, "result": '{"parsed": [1, 2]}'})
    assert (await Task.objects.aget(id=task_id)).result == {"parsed": [1, 2]}


async def test_complete_after_claim_keeps_existing_metadata(call, redis, new_task, instance):
    task = await new_task("with meta", metadata={"origin": "test"})
    await instance("w-1")
    await call("task.claim", {"workerId": "w-1"})
    await call("task.complete", {"id": task["id"], "result": {"n": 1}})
    metadata = (await Task.objects.aget(id=task["id"])).metadata
    assert metadata["origin"] == "test" and metadata["completedBy"] == "w-1"


async def test_refusals(call, redis, new_task, assigned_task, stream_events):
    with pytest.raises(HandlerError, match="Task not found: t-77"):
        await call("task.complete", {"id": "t-77"})
    free = await new_task("free")
    with pytest.raises(HandlerError, match="Task not assigned"):
        await call("task.complete", {"id": free["id"], "result": 1})
    assert await redis.hget(keys.task(free["id"]), "status") == "pending"
    assert await redis.zscore(keys.PENDING_TASKS, free["id"]) is not None
    task_id, _ = await assigned_task("w-1")
    await call("task.complete", {"id": task_id, "result": {"first": True}})
    with pytest.raises(HandlerError, match="Task already completed"):
        await call("task.complete", {"id": task_id, "result": {"second": True}})
    assert orjson.loads(await redis.hget(keys.task(task_id), "result")) == {"first": True}
    assert (await Task.objects.aget(id=task_id)).result == {"first": True}
    assert len(await stream_events("task.completed")) == 1


async def test_failed_task_cannot_be_completed(call, redis, assigned_task):
    task_id, _ = await assigned_task("w-1")
    await call("task.update", {"id": task_id, "updates": {"status": "failed"}})
    with pytest.raises(HandlerError, match="Task already completed"):
        await call("task.complete", {"id": task_id})


async def test_an_id_is_required_input_validation(call, redis):
    # SPEC §18.2: the cross-field rule is input validation (-32602), not a handler error.
    for params in ({}, {"result": 1}, {"id": ""}, {"taskId": ""}, {"id": 5}, {"id": None}):
        with pytest.raises(InvalidParams):
            await call("task.complete", params)


async def test_missing_id_over_json_rpc_is_minus_32602(rpc, redis):
    answer = await rpc("task.complete", {"result": "x"})
    assert answer["error"]["code"] == -32602
    assert "Either 'id' or 'taskId' must be provided" in orjson.dumps(answer["error"]["data"]).decode()
