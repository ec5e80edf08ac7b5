"""task.claim: the pull model (SPEC §5.3.1, §9.4), including concurrent workers."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings

from claudebench.core import keys
from claudebench.core.errors import HandlerError, InvalidParams
from tasks.models import Task
from tests.factories import TASK_DB

pytestmark = TASK_DB


async def test_claim_takes_the_highest_priority_pending_task(call, redis, new_task, instance, stream_events):
    low = await new_task("low", 10)
    high = await new_task("high", 90, metadata={"kind": "urgent"})
    await instance("w-1")
    out = await call("task.claim", {"workerId": "w-1"})
    assert out["claimed"] is True and out["taskId"] == high["id"]
    task = out["task"]
    assert task["id"] == high["id"] and task["text"] == "high" and task["priority"] == 90
    assert task["status"] == "in_progress" and task["assignedTo"] == "w-1"
    assert task["metadata"] == {"kind": "urgent"}
    assert task["createdAt"] == high["createdAt"] and task["completedAt"] is None
    assert "attachments" not in task and "attachmentCount" not in task  # omitted when empty
    stored = await redis.hgetall(keys.task(high["id"]))
    assert stored["status"] == "in_progress" and stored["assignedTo"] == "w-1"
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1) == [low["id"]]
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == [high["id"]]
    row = await Task.objects.aget(id=high["id"])
    assert (row.status, row.assigned_to) == ("in_progress", "w-1")
    [claimed] = await stream_events("task.claimed")
    assert claimed["payload"] == {"taskId": high["id"], "workerId": "w-1"}
    assert set(claimed["metadata"]) == {"claimedAt"}
    assert [e["payload"]["taskId"] for e in await stream_events("task.assigned")] == [high["id"]]
    [updated] = await stream_events("task.updated")
    assert updated["payload"]["status"] == "in_progress" and updated["metadata"]["changes"] == ["status"]
    assert updated["metadata"]["updatedBy"] == settings.INSTANCE_ID


async def test_equal_priorities_are_claimed_oldest_first(call, redis, new_task, instance):
    first = await new_task("first", 50)
    second = await new_task("second", 50)
    await instance("w-1")
    assert (await call("task.claim", {"workerId": "w-1"}))["taskId"] == first["id"]
    assert (await call("task.claim", {"workerId": "w-1"}))["taskId"] == second["id"]
    assert await call("task.claim", {"workerId": "w-1"}) == {"claimed": False}


async def test_nothing_to_claim_is_not_an_error(call, redis, instance, stream_events):
    await instance("w-1")
    assert await call("task.claim", {"workerId": "w-1", "maxTasks": 5}) == {"claimed": False}
    assert await stream_events("task.claimed") == []


async def test_tasks_assigned_to_others_or_not_pending_are_skipped(call, redis, new_task, instance, assigned_task):
    await assigned_task("w-other", "someone else's", 99)
    busy = await new_task("busy", 80)
    await call("task.update", {"id": busy["id"], "updates": {"status": "in_progress"}})
    free = await new_task("free", 1)
    await instance("w-1")
    out = await call("task.claim", {"workerId": "w-1"})
    assert out["taskId"] == free["id"]


async def test_a_task_assigned_to_the_claimer_is_claimable(call, redis, assigned_task):
    task_id, worker = await assigned_task("w-1")
    out = await call("task.claim", {"workerId": worker})
    assert out["taskId"] == task_id
    assert await redis.lrange(keys.instance_queue(worker), 0, -1) == [task_id]


async def test_unregistered_or_unavailable_worker_is_refused(call, redis, new_task, instance, stream_events):
    task = await new_task("waiting")
    with pytest.raises(HandlerError, match="Worker not registered: w-nobody"):
        await call("task.claim", {"workerId": "w-nobody"})
    await instance("w-off", status="OFFLINE")
    with pytest.raises(HandlerError, match=r"Worker w-off is not available \(status: OFFLINE\)"):
        await call("task.claim", {"workerId": "w-off"})
    await instance("w-sick", status="", health="unhealthy")
    with pytest.raises(HandlerError, match=r"Worker w-sick is not available"):
        await call("task.claim", {"workerId": "w-sick"})
    assert await redis.hget(keys.task(task["id"]), "status") == "pending"
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is not None
    assert await stream_events("task.claimed") == []


async def test_claim_input_is_strict(call, redis):
    for params in ({}, {"workerId": ""}, {"workerId": 5}, {"workerId": "w", "maxTasks": 0},
                   {"workerId": "w", "maxTasks": 11}, {"workerId": "w", "maxTasks": "1"}):
        with pytest.raises(InvalidParams):
            await call("task.claim", params)


async def test_concurrent_claims_never_hand_out_a_task_twice(call, redis, new_task, instance):
    tasks = [await new_task(f"job {i}", 50 + i) for i in range(4)]
    workers = [await instance(f"w-{i}") for i in range(6)]
    outs = await asyncio.gather(*(call("task.claim", {"workerId": w}) for w in workers))
    claimed = [(o["taskId"], w) for o, w in zip(outs, workers, strict=True) if o["claimed"]]
    ids = [task_id for task_id, _ in claimed]
    assert len(ids) == len(set(ids)) == len(tasks)  # every task once, no task twice
    assert sorted(ids) == sorted(t["id"] for t in tasks)
    for task_id, worker in claimed:
        stored = await redis.hgetall(keys.task(task_id))
        assert (stored["assignedTo"], stored["status"]) == (worker, "in_progress")
        assert await redis.lrange(keys.instance_queue(worker), 0, -1) == [task_id]
        row = await Task.objects.aget(id=task_id)
        assert (row.assigned_to, row.status) == (worker, "in_progress")
    assert await redis.zcard(keys.PENDING_TASKS) == 0


async def test_claimed_task_carries_its_attachments_with_git_values_stripped(call, redis, new_task, instance):
    from tasks import services

    task = await new_task("with context")
    await services.attachment_put(redis, task_id=task["id"], key="context", type="json", value={"hint": 1},
                                  created_by="t")
    await services.attachment_put(redis, task_id=task["id"], key="git-commit-abc1234", type="json",
                                  value={"diff": "secret"}, created_by="t")
    await services.attachment_put(redis, task_id=task["id"], key="spec", type="markdown", content="# Spec",
                                  created_by="t")
    await instance("w-1")
    claimed = (await call("task.claim", {"workerId": "w-1"}))["task"]
    assert claimed["attachmentCount"] == 3
    attachments = claimed["attachments"]
    assert set(attachments) == {"context", "git-commit-abc1234", "spec"}
    assert attachments["context"]["value"] == {"hint": 1} and attachments["context"]["type"] == "json"
    assert attachments["git-commit-abc1234"]["value"] is None
    assert attachments["spec"]["value"] == "# Spec"
    assert all(a["createdAt"].endswith("Z") for a in attachments.values())
