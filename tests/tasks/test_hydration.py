"""Start-up hydration: Redis task state rebuilt from PostgreSQL when Redis has none (SPEC §12.3)."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import orjson
from asgiref.sync import sync_to_async
from django.core.management import call_command

from claudebench.core import keys
from claudebench.core.clock import iso_ms
from tasks.models import Task
from tasks.services import tasks_hydrate
from tests.factories import BASE_TIME, TASK_DB, TaskAttachmentFactory, TaskFactory

pytestmark = TASK_DB

FUTURE = int(time.time() * 1000) + 50_000_000  # ids "from another clock": the counter must pass them


@sync_to_async
def make_rows() -> dict[str, str]:
    rows = {
        "pending": TaskFactory(id=f"t-{FUTURE}", text="waiting\n  for someone", priority=0,
                               metadata={"source": "pg"}),
        "pending_assigned": TaskFactory(id=f"t-{FUTURE + 1}", assigned_to="w-1"),
        "in_progress": TaskFactory(id=f"t-{FUTURE + 2}", status="in_progress", assigned_to="w-1", priority=80),
        "completed": TaskFactory(id=f"t-{FUTURE + 3}", status="completed", assigned_to="w-2", result={"ok": 1},
                                 completed_at=BASE_TIME + timedelta(hours=1)),
        "failed": TaskFactory(id=f"t-{FUTURE + 4}", status="failed", error="boom"),
    }
    return {name: task.id for name, task in rows.items()}


async def test_hydrate_rebuilds_hashes_and_queues(redis):
    ids = await make_rows()
    assert await tasks_hydrate(redis) == 5
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1, withscores=True) == [(ids["pending"], 0.0)]
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == [ids["pending_assigned"], ids["in_progress"]]
    assert await redis.exists(keys.instance_queue("w-2")) == 0  # completed: in no queue
    row = await Task.objects.aget(id=ids["pending"])
    stored = await redis.hgetall(keys.task(ids["pending"]))
    assert stored["text"] == "waiting\n  for someone" and stored["priority"] == "0"
    assert stored["status"] == "pending" and stored["assignedTo"] == ""
    assert stored["createdAt"] == iso_ms(int(row.created_at.timestamp() * 1000))
    assert orjson.loads(stored["metadata"]) == {"source": "pg"}
    done = await redis.hgetall(keys.task(ids["completed"]))
    assert done["status"] == "completed" and orjson.loads(done["result"]) == {"ok": 1}
    assert done["completedAt"] == "2026-01-01T01:00:00.000Z" and done["assignedTo"] == "w-2"
    assert (await redis.hgetall(keys.task(ids["failed"])))["error"] == "boom"
    assert await redis.get(keys.HYDRATION_DONE) is not None
    assert await redis.exists(keys.HYDRATION_LOCK) == 0


async def test_restored_tasks_work_with_the_handlers(call, redis):
    ids = await make_rows()
    await tasks_hydrate(redis)
    created = await call("task.create", {"text": "after restart"})
    assert int(created["id"][2:]) > FUTURE + 4  # the id counter continues above restored ids
    await call("task.complete", {"id": ids["in_progress"], "result": "fine"})
    assert await redis.llen(keys.instance_queue("w-1")) == 1
    out = await call("task.update", {"id": ids["pending"], "updates": {"priority": 10}})
    assert out["priority"] == 10 and await redis.zscore(keys.PENDING_TASKS, ids["pending"]) == -10


async def test_hydrate_does_nothing_when_redis_already_has_tasks(call, redis):
    await make_rows()
    live = await call("task.create", {"text": "live"})
    assert await tasks_hydrate(redis) == 0
    task_keys = [k async for k in redis.scan_iter(match=keys.TASK_PATTERN) if keys.is_task_hash_key(k)]
    assert task_keys == [keys.task(live["id"])]
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1) == [live["id"]]


async def test_hydrate_is_skipped_while_another_server_holds_the_lock(redis):
    await make_rows()
    await redis.set(keys.HYDRATION_LOCK, "1", ex=60)
    assert await tasks_hydrate(redis) == 0
    assert await redis.zcard(keys.PENDING_TASKS) == 0


async def test_hydrate_with_an_empty_database(redis):
    assert await tasks_hydrate(redis) == 0
    assert [k async for k in redis.scan_iter(match=keys.TASK_PATTERN)] == []


async def test_hydrate_pages_through_every_row(redis):
    await sync_to_async(TaskFactory.create_batch)(7)
    assert await tasks_hydrate(redis, page_size=3) == 7
    assert await redis.zcard(keys.PENDING_TASKS) == 7


async def test_hydrate_redis_command(redis):
    ids = await make_rows()
    out = io.StringIO()
    await sync_to_async(call_command)("hydrate_redis", stdout=out)
    assert "restored 5 task(s)" in out.getvalue()
    assert await redis.exists(keys.task(ids["completed"])) == 1
    again = io.StringIO()
    await sync_to_async(call_command)("hydrate_redis", stdout=again, verbosity=2)
    assert "already holds tasks" in again.getvalue()


async def test_hydrate_restores_attachments_of_restored_tasks(call, redis):
    ids = await make_rows()

    @sync_to_async
    def attach() -> None:
        completed = Task.objects.get(id=ids["completed"])
        TaskAttachmentFactory(task=completed, key="result", value={"ok": 1}, created_by="w-2")
        TaskAttachmentFactory(task=completed, key="notes", type="markdown", value=None, content="# hi", size=4)

    await attach()
    await tasks_hydrate(redis)
    assert sorted(await redis.zrange(keys.task_attachments(ids["completed"]), 0, -1)) == ["notes", "result"]
    result = await redis.hgetall(keys.task_attachment(ids["completed"], "result"))
    assert result["type"] == "json" and orjson.loads(result["value"]) == {"ok": 1} and result["createdBy"] == "w-2"
    notes = await redis.hgetall(keys.task_attachment(ids["completed"], "notes"))
    assert (notes["type"], notes["content"], notes["value"], notes["size"]) == ("markdown", "# hi", "", "4")
    [listed] = (await call("task.list", {"status": "completed"}))["tasks"]
    assert listed["attachmentCount"] == 2 and listed["resultAttachment"]["value"] == {"ok": 1}
    # A restored task with attachments is deleted completely.
    await call("task.delete", {"id": ids["completed"]})
    assert [k async for k in redis.scan_iter(match=f"*{ids['completed']}*")] == []
