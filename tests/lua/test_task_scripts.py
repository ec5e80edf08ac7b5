"""The task Lua scripts on their own: KEYS/ARGV and the key layout are the contract (SPEC §6.5, §7).

Scripts run as registered from lua/*.lua with keys built by claudebench.core.keys, exactly as the
wrappers in core/scripts.py pass them; no handler or PostgreSQL is involved.
"""

from __future__ import annotations

import orjson
import pytest

from claudebench.core import keys, scripts
from claudebench.core.errors import HandlerError
from claudebench.core.scripts import Retry

NOW_ISO = "2026-01-01T00:00:00.000Z"
LATER_ISO = "2026-01-01T00:01:00.000Z"


def lua(redis, name: str):
    return redis.register_script(scripts.SOURCES[name])


async def create(redis, number: int, *, text: str = "t", priority: int = 50, metadata: str = "{}",
                 candidates: int = 1, event_id: str | None = None):
    event_id = event_id or f"evt-create-{number}"
    return await lua(redis, "task_create")(
        keys=[keys.PENDING_TASKS, keys.TASK_ID_COUNTER, keys.METRICS_QUEUES, keys.processed_event(event_id),
              keys.stream("task.created"), *(keys.task(f"t-{n}") for n in range(number, number + candidates))],
        args=[text, priority, NOW_ISO, metadata, 1_767_225_600_000, f'{{"id":"{event_id}","payload":{{"id":"', '"}}',
              keys.channel("task.created"), 100, 60, 60, number],
    )


async def hash_of(redis, task_id: str) -> dict[str, str]:
    return await redis.hgetall(keys.task(task_id))


# --- task_create ---------------------------------------------------------------------------------------
async def test_task_create_stores_hash_queue_counter_and_metrics(redis):
    assert await create(redis, 100, text="hello\nworld", priority=0, metadata='{"a":1}') == [1, "t-100"]
    stored = await hash_of(redis, "t-100")
    assert stored == {"id": "t-100", "text": "hello\nworld", "priority": "0", "status": "pending",
                      "createdAt": NOW_ISO, "updatedAt": NOW_ISO, "metadata": '{"a":1}', "assignedTo": "",
                      "result": "", "error": "", "createdAtMs": "1767225600000"}
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1, withscores=True) == [("t-100", 0.0)]
    assert await redis.get(keys.TASK_ID_COUNTER) == "100"
    assert await redis.hgetall(keys.METRICS_QUEUES) == {"totalTasks": "1", "pendingTasks": "1", "throughput": "0"}


async def test_task_create_allocates_strictly_increasing_ids(redis):
    assert await create(redis, 100) == [1, "t-100"]
    # Not above the last id handed out: refused with the next candidate, nothing written.
    assert await create(redis, 100) == [0, "retry", 101]
    assert await create(redis, 50) == [0, "retry", 101]
    assert await redis.exists(keys.task("t-50")) == 0
    assert await create(redis, 101) == [1, "t-101"]
    assert await redis.get(keys.TASK_ID_COUNTER) == "101"
    assert await redis.zcard(keys.PENDING_TASKS) == 2


async def test_task_create_never_overwrites_an_existing_hash(redis):
    await redis.hset(keys.task("t-200"), mapping={"id": "t-200", "text": "restored"})
    assert await create(redis, 200) == [0, "retry", 201]
    assert await redis.hget(keys.task("t-200"), "text") == "restored"


async def test_task_create_takes_the_first_free_candidate_above_the_counter(redis):
    await redis.set(keys.TASK_ID_COUNTER, "302")
    await redis.hset(keys.task("t-303"), mapping={"id": "t-303", "text": "restored"})
    # 300..302 are at or below the last id handed out, 303 exists: 304 is taken.
    assert await create(redis, 300, candidates=8) == [1, "t-304"]
    assert await redis.get(keys.TASK_ID_COUNTER) == "304"
    assert await redis.hget(keys.task("t-303"), "text") == "restored"
    assert [await redis.exists(keys.task(f"t-{n}")) for n in (300, 301, 302, 305)] == [0, 0, 0, 0]
    # Every candidate at or below the counter: refused, nothing written, told where to start.
    assert await create(redis, 297, candidates=8) == [0, "retry", 305]
    assert await create(redis, 290, candidates=4) == [0, "retry", 305]
    assert await redis.zcard(keys.PENDING_TASKS) == 1


async def test_task_create_ids_keep_every_digit(redis):
    big = 9_007_199_254_740_000  # near 2^53: Lua numbers are doubles, the id is copied as text
    await redis.set(keys.TASK_ID_COUNTER, str(big))
    assert await create(redis, big + 1, candidates=3) == [1, f"t-{big + 1}"]
    assert await redis.get(keys.TASK_ID_COUNTER) == str(big + 1)


async def test_task_create_publishes_the_event_with_the_chosen_id(redis):
    await redis.set(keys.TASK_ID_COUNTER, "700")
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.channel("task.created"))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    assert await create(redis, 699, candidates=4, event_id="evt-1-a") == [1, "t-701"]
    body = '{"id":"evt-1-a","payload":{"id":"t-701"}}'
    [(_, fields)] = await redis.xrange(keys.stream("task.created"))
    assert fields == {"data": body}
    # Pub/sub ignores database numbers: other sessions' task.created may arrive too; ours must.
    heard = []
    for _ in range(50):
        message = await pubsub.get_message(timeout=2)
        if message is None or message["data"] == body:
            heard.append(message)
            break
    assert heard and heard[0] is not None and heard[0]["data"] == body
    await pubsub.aclose()
    assert await redis.exists(keys.processed_event("evt-1-a")) == 1
    assert 0 < await redis.ttl(keys.stream("task.created")) <= 60
    # A refused call publishes nothing.
    assert (await create(redis, 600, event_id="evt-1-b"))[0] == 0
    assert await redis.xlen(keys.stream("task.created")) == 1
    assert await redis.exists(keys.processed_event("evt-1-b")) == 0


async def test_task_create_wrapper_reports_the_next_candidate(redis):
    from claudebench.core import bus

    def event() -> scripts.EventTemplate:
        event_id, before, after = bus.template("task.created", {"id": ""}, "id")
        return scripts.EventTemplate(event_id, "task.created", before, after)

    common = dict(text="x", priority=1, created_at=NOW_ISO, metadata="{}", now_ms=1, stream_maxlen=100,
                  stream_ttl_s=60, marker_ttl_s=60)
    await redis.set(keys.TASK_ID_COUNTER, "500")
    assert await scripts.task_create(redis, number=10, event=event(), **common) == (None, 501)
    assert await scripts.task_create(redis, number=496, event=event(), **common) == ("t-501", 501)
    assert await scripts.task_create(redis, number=501, event=event(), **common) == ("t-502", 502)
    payloads = [orjson.loads(f["data"])["payload"] for _, f in await redis.xrange(keys.stream("task.created"))]
    assert payloads == [{"id": "t-501"}, {"id": "t-502"}]


async def test_equal_priorities_order_by_member(redis):
    for number in (300, 301, 302):
        await create(redis, number, priority=70)
    await create(redis, 303, priority=90)
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1) == ["t-303", "t-300", "t-301", "t-302"]


# --- task_update ---------------------------------------------------------------------------------------
async def update(redis, task_id: str, updates: dict, *, assignee: str = "", metadata: str | None = None):
    if metadata is None:
        metadata = await redis.hget(keys.task(task_id), "metadata") or ""
    return await lua(redis, "task_update")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.instance_queue(assignee)],
        args=[task_id, assignee, metadata, orjson.dumps(updates).decode(), LATER_ISO],
    )


async def test_task_update_returns_the_whole_hash(redis):
    await create(redis, 1, text="old")
    reply = await update(redis, "t-1", {"text": "new ✓", "priority": 7})
    assert reply[0] == 1
    fields = dict(zip(reply[1::2], reply[2::2], strict=True))
    assert fields == await hash_of(redis, "t-1")
    assert fields["text"] == "new ✓" and fields["priority"] == "7" and fields["updatedAt"] == LATER_ISO


async def test_task_update_queue_policy(redis):
    await create(redis, 1, priority=40)
    await update(redis, "t-1", {"status": "in_progress"})
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") is None
    await update(redis, "t-1", {"status": "pending", "priority": 60})
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") == -60
    await update(redis, "t-1", {"priority": 0})
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") == 0
    await update(redis, "t-1", {"status": "failed"})
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") is None
    assert await redis.hget(keys.task("t-1"), "completedAt") == LATER_ISO
    await update(redis, "t-1", {"status": "pending"})  # a retry leaves failed
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") == 0
    assert await redis.hget(keys.task("t-1"), "completedAt") is None


async def test_task_update_of_an_assigned_task_never_touches_the_pending_queue(redis):
    await create(redis, 1)
    await redis.hset(keys.task("t-1"), "assignedTo", "w-1")
    await redis.zrem(keys.PENDING_TASKS, "t-1")
    await redis.rpush(keys.instance_queue("w-1"), "t-1")
    await update(redis, "t-1", {"priority": 99, "status": "pending"}, assignee="w-1")
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") is None  # SPEC §16 row 28
    await update(redis, "t-1", {"status": "completed"}, assignee="w-1")
    assert await redis.llen(keys.instance_queue("w-1")) == 0


async def test_task_update_retries_when_assignee_or_metadata_changed(redis):
    await create(redis, 1, metadata='{"v":1}')
    assert await update(redis, "t-1", {"text": "x"}, assignee="w-1") == [0, "retry"]
    assert await update(redis, "t-1", {"text": "x"}, metadata='{"v":0}') == [0, "retry"]
    assert await redis.hget(keys.task("t-1"), "text") == "t"
    with pytest.raises(Retry):
        await scripts.task_update(redis, task_id="t-1", assignee="w-9", metadata_read='{"v":1}', updates="{}",
                                  now_iso=LATER_ISO)


async def test_task_update_refusals(redis):
    assert await update(redis, "t-9", {"text": "x"}, metadata="") == [0, "Task not found"]
    await create(redis, 1)
    await update(redis, "t-1", {"status": "completed"})
    assert await update(redis, "t-1", {"status": "in_progress"}) == [
        0, "Cannot change status of completed task to in_progress"]
    with pytest.raises(HandlerError, match="Cannot change status"):
        await scripts.task_update(redis, task_id="t-1", assignee="", metadata_read="{}",
                                  updates='{"status":"pending"}', now_iso=LATER_ISO)
    await create(redis, 2, metadata='{"type":"project"}')
    await update(redis, "t-2", {"status": "completed"})
    assert (await update(redis, "t-2", {"status": "pending"}))[0] == 1


# --- task_assign -----------------------------------------------------------------------------------------
async def assign(redis, task_id: str, instance_id: str):
    return await lua(redis, "task_assign")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.instance(instance_id), keys.instance_queue(instance_id),
              keys.task_assignment_history(task_id), keys.metrics_instance(instance_id)],
        args=[task_id, instance_id, NOW_ISO, "tester"],
    )


async def test_task_assign_keeps_one_queue_entry(redis):
    await create(redis, 1)
    await redis.hset(keys.instance("w-1"), mapping={"id": "w-1", "status": "ACTIVE", "health": "healthy"})
    assert await assign(redis, "t-1", "w-1") == [1, ""]
    assert await assign(redis, "t-1", "w-1") == [1, "w-1"]
    # Even a queue that already holds duplicates (written by an older server) ends with one entry.
    await redis.rpush(keys.instance_queue("w-1"), "t-1", "t-1")
    assert await assign(redis, "t-1", "w-1") == [1, "w-1"]
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == ["t-1"]
    assert await redis.hget(keys.metrics_instance("w-1"), "assignedTasks") == "1"
    history = [orjson.loads(h) for h in await redis.lrange(keys.task_assignment_history("t-1"), 0, -1)]
    assert history == [{"instanceId": "w-1", "assignedAt": NOW_ISO, "assignedBy": "tester"}] * 3
    stored = await hash_of(redis, "t-1")
    assert (stored["assignedTo"], stored["status"], stored["assignedAt"]) == ("w-1", "pending", NOW_ISO)
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") is None


async def test_task_assign_refusals(redis):
    assert await assign(redis, "t-1", "w-1") == [0, "Task not found: t-1"]
    await create(redis, 1)
    assert await assign(redis, "t-1", "w-1") == [0, "Instance not found: w-1"]
    await redis.hset(keys.instance("w-off"), mapping={"status": "OFFLINE"})
    assert await assign(redis, "t-1", "w-off") == [0, "Instance w-off is not available (status: OFFLINE)"]
    await redis.hset(keys.instance("w-1"), mapping={"status": "ACTIVE"})
    await redis.hset(keys.instance("w-2"), mapping={"status": "ACTIVE"})
    await assign(redis, "t-1", "w-1")
    assert await assign(redis, "t-1", "w-2") == [0, "Task t-1 is already assigned to w-1."]
    assert await redis.llen(keys.instance_queue("w-2")) == 0


# --- delete_task -------------------------------------------------------------------------------------------
async def delete(redis, task_id: str, assignee: str, attachment_keys: list[str]):
    return await lua(redis, "delete_task")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.instance_queue(assignee), keys.METRICS_TASK_DELETE,
              keys.task_attachments(task_id), keys.task_assignment_history(task_id),
              keys.task_completion_history(task_id), *(keys.task_attachment(task_id, k) for k in attachment_keys)],
        args=[task_id, assignee, NOW_ISO, len(attachment_keys)],
    )


async def test_delete_task_removes_every_key_of_the_task(redis):
    await create(redis, 1)
    await create(redis, 2)
    await redis.hset(keys.task("t-1"), mapping={"assignedTo": "w-1", "status": "in_progress"})
    await redis.rpush(keys.instance_queue("w-1"), "t-2", "t-1")
    for key in ("result", "notes"):
        await redis.hset(keys.task_attachment("t-1", key), mapping={"key": key})
        await redis.zadd(keys.task_attachments("t-1"), {key: 1})
    await redis.rpush(keys.task_assignment_history("t-1"), "{}")
    await redis.rpush(keys.task_completion_history("t-1"), "{}")
    assert await delete(redis, "t-1", "w-1", ["notes", "result"]) == [1, "in_progress"]
    assert sorted([k async for k in redis.scan_iter(match="*t-1*")]) == []
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1) == ["t-2"]  # removed whatever the status
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == ["t-2"]
    metrics = await redis.hgetall(keys.METRICS_TASK_DELETE)
    assert metrics == {"total": "1", "in_progress": "1", "lastDeleted": NOW_ISO}
    assert await redis.exists(keys.task("t-2")) == 1


async def test_delete_task_retries_when_the_caller_read_stale_state(redis):
    await create(redis, 1)
    await redis.zadd(keys.task_attachments("t-1"), {"late": 1})
    assert await delete(redis, "t-1", "", []) == [0, "retry"]
    assert await delete(redis, "t-1", "w-x", ["late"]) == [0, "retry"]
    assert await redis.exists(keys.task("t-1")) == 1
    with pytest.raises(Retry):
        await scripts.delete_task(redis, task_id="t-1", assignee="", attachment_keys=[], now_iso=NOW_ISO)


async def test_delete_task_not_found(redis):
    assert await delete(redis, "t-404", "", []) == [0, "Task not found"]
    assert await scripts.delete_task(redis, task_id="t-404", assignee="", attachment_keys=[], now_iso=NOW_ISO) is None
    assert await redis.exists(keys.METRICS_TASK_DELETE) == 0


# --- task_restore --------------------------------------------------------------------------------------------
async def restore(redis, task_id: str, status: str, assignee: str = "", priority: int = 50, **fields: str):
    return await scripts.task_restore(
        redis, task_id=task_id, status=status, assignee=assignee, priority=priority,
        fields={"id": task_id, "status": status, "assignedTo": assignee, "priority": str(priority), **fields},
    )


async def test_task_restore_queues_by_status(redis):
    assert await restore(redis, "t-10", "pending", priority=30) is True
    assert await restore(redis, "t-11", "pending", "w-1") is True
    assert await restore(redis, "t-12", "in_progress", "w-1") is True
    assert await restore(redis, "t-13", "completed", "w-1") is True
    assert await restore(redis, "t-14", "failed") is True
    assert await restore(redis, "t-15", "in_progress") is True
    assert await redis.zrange(keys.PENDING_TASKS, 0, -1, withscores=True) == [("t-10", -30.0)]
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == ["t-11", "t-12"]
    assert (await hash_of(redis, "t-13"))["status"] == "completed"
    assert await redis.get(keys.TASK_ID_COUNTER) == "15"


async def test_task_restore_never_overwrites_and_keeps_a_higher_counter(redis):
    await redis.set(keys.TASK_ID_COUNTER, "1000")
    await restore(redis, "t-5", "pending", text="first")
    assert await restore(redis, "t-5", "completed", text="second") is False
    assert await redis.hget(keys.task("t-5"), "text") == "first"
    assert await redis.get(keys.TASK_ID_COUNTER) == "1000"
    assert await restore(redis, "legacy-id", "pending") is True  # non t-<digits> ids do not move the counter
    assert await redis.get(keys.TASK_ID_COUNTER) == "1000"


# --- task_complete and task_unassign -------------------------------------------------------------------------
async def complete(redis, task_id: str, assignee: str, result: str = "null", now_ms: int = 1_767_225_660_000):
    return await lua(redis, "task_complete")(
        keys=[keys.task(task_id), keys.instance_queue(assignee), keys.metrics_instance(assignee),
              keys.METRICS_QUEUES, keys.task_completion_history(task_id)],
        args=[task_id, assignee, result, LATER_ISO, now_ms, "w-1"],
    )


async def test_task_complete_without_result_is_completed_and_counted(redis):
    await create(redis, 1)
    await redis.hset(keys.task("t-1"), "assignedTo", "w-1")
    await redis.rpush(keys.instance_queue("w-1"), "t-1")
    assert await complete(redis, "t-1", "w-1") == [1, "completed", 60_000]  # duration from createdAtMs
    stored = await hash_of(redis, "t-1")
    assert (stored["status"], stored["result"], stored["completedAt"], stored["duration"]) == (
        "completed", "null", LATER_ISO, "60000")
    assert await redis.llen(keys.instance_queue("w-1")) == 0
    queues = await redis.hgetall(keys.METRICS_QUEUES)
    assert queues["completedTasks"] == "1" and queues["tasksCompleted"] == "1" and queues["throughput"] == "0"
    [entry] = await redis.lrange(keys.task_completion_history("t-1"), 0, -1)
    assert orjson.loads(entry) == {"status": "completed", "completedAt": LATER_ISO, "completedBy": "w-1",
                                   "duration": 60000}


async def test_task_complete_refusals_and_retry(redis):
    assert await complete(redis, "t-1", "") == [0, "Task not found"]
    await create(redis, 1)
    assert await complete(redis, "t-1", "") == [0, "Task not assigned"]
    assert await complete(redis, "t-1", "w-1") == [0, "retry"]  # caller read a stale assignee
    await redis.hset(keys.task("t-1"), mapping={"assignedTo": "w-1", "status": "failed"})
    assert await complete(redis, "t-1", "w-1") == [0, "Task already completed"]


async def test_task_unassign_requeues_with_minus_priority(redis):
    await create(redis, 1, priority=35)
    await redis.hset(keys.task("t-1"), mapping={"assignedTo": "w-1", "status": "in_progress", "assignedAt": NOW_ISO})
    await redis.zrem(keys.PENDING_TASKS, "t-1")
    await redis.rpush(keys.instance_queue("w-1"), "t-1")
    reply = await lua(redis, "task_unassign")(
        keys=[keys.task("t-1"), keys.PENDING_TASKS, keys.instance_queue("w-1"),
              keys.task_assignment_history("t-1"), keys.metrics_instance("w-1")],
        args=["t-1", "w-1", LATER_ISO, "tester"],
    )
    assert reply == [1, "w-1"]
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") == -35
    stored = await hash_of(redis, "t-1")
    assert (stored["assignedTo"], stored["status"], stored["unassignedAt"]) == ("", "pending", LATER_ISO)
    assert "assignedAt" not in stored
    assert await redis.llen(keys.instance_queue("w-1")) == 0


async def test_task_update_reopening_an_assigned_task_puts_it_back_on_its_instance_queue(redis):
    await create(redis, 1)
    await redis.hset(keys.task("t-1"), "assignedTo", "w-1")
    await redis.zrem(keys.PENDING_TASKS, "t-1")
    await redis.rpush(keys.instance_queue("w-1"), "t-1")
    await update(redis, "t-1", {"status": "failed"}, assignee="w-1")
    assert await redis.llen(keys.instance_queue("w-1")) == 0
    await update(redis, "t-1", {"status": "pending"}, assignee="w-1")  # a retry of a failed task
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == ["t-1"]
    await update(redis, "t-1", {"status": "in_progress"}, assignee="w-1")  # still once
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == ["t-1"]
    assert await redis.zscore(keys.PENDING_TASKS, "t-1") is None


async def test_task_create_renews_the_stream_ttl_only_once_it_ran_down(redis):
    assert (await create(redis, 900))[0] == 1
    stream = keys.stream("task.created")
    assert 0 < await redis.ttl(stream) <= 60
    await redis.expire(stream, 57)  # down by less than a tenth (6 s): left alone
    assert (await create(redis, 901))[0] == 1
    assert await redis.ttl(stream) <= 57
    await redis.expire(stream, 30)  # down by more: renewed to the full TTL
    assert (await create(redis, 902))[0] == 1
    assert await redis.ttl(stream) > 57


async def test_task_create_refuses_ids_past_exact_double_range(redis):
    from claudebench.core import bus

    event_id, before, after = bus.template("task.created", {"id": ""}, "id")
    with pytest.raises(HandlerError, match="exhausted"):
        await scripts.task_create(redis, number=2**53 - 8, text="x", priority=1, created_at=NOW_ISO, metadata="{}",
                                  now_ms=1, event=scripts.EventTemplate(event_id, "task.created", before, after),
                                  stream_maxlen=100, stream_ttl_s=60, marker_ttl_s=60)
    assert await redis.exists(keys.TASK_ID_COUNTER, keys.PENDING_TASKS) == 0
