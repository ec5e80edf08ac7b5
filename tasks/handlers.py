"""Task handlers (SPEC §5.3.1, §9): the use cases, one declaration each."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from claudebench.core import bus, keys, pg, scripts
from claudebench.core.clock import iso_ms, now_ms, parse_iso
from claudebench.core.errors import HandlerError
from claudebench.core.pipeline import Ctx
from claudebench.core.registry import Limits, Mcp, handler
from claudebench.core.scripts import Retry
from tasks import services
from tasks.models import Task
from tasks.schemas import (
    ClaimedTask,
    ListedTask,
    ResultAttachment,
    TaskAssignIn,
    TaskAssignOut,
    TaskClaimIn,
    TaskClaimOut,
    TaskCompleteIn,
    TaskCompleteOut,
    TaskCreateIn,
    TaskCreateOut,
    TaskDeleteIn,
    TaskDeleteOut,
    TaskListIn,
    TaskListOut,
    TaskUnassignIn,
    TaskUnassignOut,
    TaskUpdateIn,
    TaskUpdateOut,
)

log = logging.getLogger("claudebench.tasks")


def _dumps(value: Any) -> str:
    return bus.to_json(value)  # orjson, or the standard library past orjson's 254-level limit


@handler(
    "task.create", input=TaskCreateIn, output=TaskCreateOut, persist=True, declared_rate_limit=10,
    limits=Limits(rate=100, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Create task", tags=("tasks",), examples=(
        {"description": "Create a high-priority task", "input": {"text": "Review the API docs", "priority": 80}},
    )),
)
async def task_create(ctx: Ctx, data: TaskCreateIn) -> TaskCreateOut:
    """Create a pending task, put it on the pending queue and publish task.created."""
    r, now = ctx.redis, now_ms()
    created_at = iso_ms(now)
    metadata = _dumps(data.metadata or {})
    # DESIGN flow 1: the script that stores the task also publishes its event (the task id, which
    # the script picks, is filled into the envelope there), then the row is committed.
    out = TaskCreateOut(id="", text=data.text, status="pending", priority=data.priority, created_at=created_at)
    event_id, before, after = bus.template("task.created", out.wire(), "id", {"createdBy": ctx.instance_id},
                                          correlation_id=ctx.meta.correlation_id)
    event = scripts.EventTemplate(event_id, "task.created", before, after)

    async def attempt(number: int, candidates: int) -> tuple[str | None, int]:
        return await scripts.task_create(
            r, number=number, text=data.text, priority=data.priority, created_at=created_at, metadata=metadata,
            now_ms=now, event=event, stream_maxlen=settings.CB_STREAM_MAXLEN, stream_ttl_s=settings.CB_STREAM_TTL_S,
            marker_ttl_s=settings.CB_PROCESSED_EVENT_TTL_S, candidates=candidates,
        )

    # The script takes the first of several consecutive candidates above the last id handed out
    # (SPEC §16 row 18). Other processes creating at the same time can use up a first proposal's
    # candidates; the retry starts where the script says and brings many more.
    task_id, number = await attempt(services.propose_number(now), scripts.ID_CANDIDATES)
    retries = 0
    while task_id is None:
        if retries == services.RETRIES:
            raise HandlerError("Could not allocate a task id")
        retries += 1
        task_id, number = await attempt(services.propose_number(number), scripts.ID_CANDIDATES_RETRY)
    services.saw_number(number)
    if ctx.persist:
        try:
            await services.task_insert(task_id=task_id, text=data.text, priority=data.priority,
                                       metadata=data.metadata, created_ms=now)
        except Exception as exc:
            # SPEC §11.3: a task missing from PostgreSQL can never be claimed. Undo it in Redis and
            # say so; task.created is already out, so task.deleted follows it.
            deleted_at = iso_ms(now_ms())
            await scripts.delete_task(r, task_id=task_id, assignee="", attachment_keys=[], now_iso=deleted_at)
            await ctx.publish("task.deleted", {"id": task_id, "deletedAt": deleted_at, "deletedBy": ctx.instance_id},
                              {"instanceId": ctx.instance_id, "eventId": ctx.event_id, "reason": "not persisted"})
            log.exception("task.create could not persist %s", task_id)
            raise HandlerError(f"Failed to persist task: {exc.__class__.__name__}") from exc
    out.id = task_id
    return out


async def _read(r, task_id: str, *fields: str) -> list[str | None]:
    values = await r.hmget(keys.task(task_id), "id", *fields)
    if values[0] is None:
        raise HandlerError(f"Task not found: {task_id}")
    return values[1:]


@handler(
    "task.update", input=TaskUpdateIn, output=TaskUpdateOut, persist=True, declared_rate_limit=20,
    limits=Limits(rate=20, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Update task", tags=("tasks",)),
)
async def task_update(ctx: Ctx, data: TaskUpdateIn) -> TaskUpdateOut:
    """Change a task's text, status, priority or metadata (metadata is merged shallowly)."""
    r = ctx.redis
    given = data.updates.model_dump(exclude_none=True)
    for _ in range(services.RETRIES):
        assignee, metadata_read = await _read(r, data.id, "assignedTo", "metadata")
        updates = {k: v for k, v in given.items() if k != "metadata"}
        if data.updates.metadata is not None:
            current = services.json_or_none(metadata_read) or {}
            updates["metadata"] = _dumps({**current, **data.updates.metadata})
        try:
            h = await scripts.task_update(
                r, task_id=data.id, assignee=assignee or "", metadata_read=metadata_read or "",
                updates=_dumps(updates), now_iso=iso_ms(now_ms()),
            )
            break
        except Retry:
            continue
    else:
        raise HandlerError(f"Task {data.id} kept changing; try again")
    if ctx.persist:
        await services.task_sync_from_hash(h)
    out = TaskUpdateOut(id=h["id"], text=h["text"], status=h["status"], priority=int(h["priority"]),
                        created_at=h["createdAt"], updated_at=h["updatedAt"])
    changes = [k for k in ("text", "status", "priority", "metadata") if k in given]
    await ctx.publish("task.updated", out.wire(), {"updatedBy": ctx.instance_id, "changes": changes})
    return out


@handler(
    "task.assign", input=TaskAssignIn, output=TaskAssignOut, persist=True, declared_rate_limit=20,
    limits=Limits(rate=20, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Assign task", tags=("tasks",), prerequisites=("The instance must be registered",)),
)
async def task_assign(ctx: Ctx, data: TaskAssignIn) -> TaskAssignOut:
    """Assign a task to a registered instance (the task stays pending until claimed or updated)."""
    r, now = ctx.redis, now_ms()
    assigned_at = iso_ms(now)
    previous = await scripts.task_assign(r, task_id=data.task_id, instance_id=data.instance_id,
                                         now_iso=assigned_at, assigned_by=ctx.actor)
    if ctx.persist:
        await services.task_sync_from_hash(await services.task_hash(r, data.task_id))
    await ctx.publish(
        "task.assigned",
        {"taskId": data.task_id, "instanceId": data.instance_id, "previousAssignment": previous or None},
        {"assignedBy": ctx.instance_id},
    )
    return TaskAssignOut(task_id=data.task_id, instance_id=data.instance_id, assigned_at=assigned_at)


@handler(
    "task.unassign", input=TaskUnassignIn, output=TaskUnassignOut, persist=True, declared_rate_limit=20,
    limits=Limits(rate=20, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Unassign task", tags=("tasks",)),
)
async def task_unassign(ctx: Ctx, data: TaskUnassignIn) -> TaskUnassignOut:
    """Take a task back from its instance and return it to the pending queue."""
    r = ctx.redis
    for _ in range(services.RETRIES):
        (assignee,) = await _read(r, data.task_id, "assignedTo")
        unassigned_at = iso_ms(now_ms())
        try:
            previous = await scripts.task_unassign(r, task_id=data.task_id, assignee=assignee or "",
                                                   now_iso=unassigned_at, unassigned_by=ctx.actor)
            break
        except Retry:
            continue
    else:
        raise HandlerError(f"Task {data.task_id} kept changing; try again")
    if ctx.persist:
        await services.task_sync_from_hash(await services.task_hash(r, data.task_id))
    await ctx.publish("task.unassigned", {"taskId": data.task_id, "previousAssignment": previous},
                      {"unassignedBy": ctx.instance_id, "unassignedAt": unassigned_at})
    return TaskUnassignOut(task_id=data.task_id, previous_assignment=previous, unassigned_at=unassigned_at)


@handler(
    "task.claim", input=TaskClaimIn, output=TaskClaimOut, declared_rate_limit=100,
    limits=Limits(rate=100, timeout_ms=5_000, trip_after=10, open_ms=30_000),
    fallback=lambda data: {"claimed": False},
    mcp=Mcp(title="Claim next task", tags=("tasks", "workers"),
            prerequisites=("Register the worker with system.register first",)),
)
async def task_claim(ctx: Ctx, data: TaskClaimIn) -> TaskClaimOut:
    """Take the highest-priority pending task for a registered worker (pull model)."""
    r = ctx.redis
    status, health = await r.hmget(keys.instance(data.worker_id), "status", "health")
    if status is None and health is None:
        raise HandlerError(f"Worker not registered: {data.worker_id}")
    state = status or health or ""
    if state in ("OFFLINE", "unhealthy") or health == "unhealthy":
        raise HandlerError(f"Worker {data.worker_id} is not available (status: {state})")
    for task_id in await services.claim_candidates(worker_id=data.worker_id):
        try:
            await ctx.call("task.assign", {"taskId": task_id, "instanceId": data.worker_id})
            await ctx.call("task.update", {"id": task_id, "updates": {"status": "in_progress"}})
        except HandlerError as exc:
            log.debug("claim of %s by %s skipped: %s", task_id, data.worker_id, exc)
            continue
        claimed_at = iso_ms(now_ms())
        await ctx.publish("task.claimed", {"taskId": task_id, "workerId": data.worker_id},
                          {"claimedAt": claimed_at})
        return TaskClaimOut(claimed=True, task_id=task_id, task=await _claimed_task(r, task_id))
    return TaskClaimOut(claimed=False)


async def _claimed_task(r, task_id: str) -> ClaimedTask:
    h = await services.task_hash(r, task_id)
    attachments = await services.attachments_in_redis(r, task_id, strip_git=True)
    return ClaimedTask(
        id=h["id"], text=h["text"], priority=int(h["priority"]), status=h["status"],
        assigned_to=h.get("assignedTo") or None, metadata=services.json_or_none(h.get("metadata")),
        result=services.json_or_none(h.get("result")), error=h.get("error") or None,
        created_at=h["createdAt"], updated_at=h["updatedAt"], completed_at=h.get("completedAt") or None,
        attachments=attachments or None, attachment_count=len(attachments) if attachments else None,
    )


@handler(
    "task.complete", input=TaskCompleteIn, output=TaskCompleteOut, persist=True, declared_rate_limit=100,
    limits=Limits(rate=100, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Complete task", tags=("tasks",), examples=(
        {"description": "Complete a simple task", "input": {"id": "t-123"}},
    )),
)
async def task_complete(ctx: Ctx, data: TaskCompleteIn) -> TaskCompleteOut:
    """Mark an assigned task completed, with an optional result."""
    r, task_id = ctx.redis, data.target
    result_json = "null" if data.result is None else _dumps(data.result)
    for _ in range(services.RETRIES):
        assignee, metadata = await _read(r, task_id, "assignedTo", "metadata")
        now = now_ms()
        completed_at = iso_ms(now)
        completed_by = data.worker_id or assignee or ""
        try:
            done = await scripts.task_complete(r, task_id=task_id, assignee=assignee or "", result=result_json,
                                               now_iso=completed_at, now_ms=now, completed_by=completed_by)
            break
        except Retry:
            continue
    else:
        raise HandlerError(f"Task {task_id} kept changing; try again")
    if ctx.persist:
        await _persist_completion(ctx, task_id, data.result, metadata, completed_at, done, completed_by)
    await ctx.publish("task.completed", {"id": task_id, "status": done.status, "duration": done.duration_ms},
                      {"completedBy": completed_by})
    return TaskCompleteOut(id=task_id, status=done.status, completed_at=completed_at)


async def _persist_completion(ctx: Ctx, task_id: str, result: Any, metadata: str | None, completed_at: str,
                              done: scripts.Completion, completed_by: str) -> None:
    """SPEC §5.3.1: PostgreSQL trouble here is logged, never undoes the completion in Redis."""
    extra = {"duration": done.duration_ms, "completedBy": completed_by,
             "resultSize": 0 if result is None else len(_dumps(result))}
    merged = {**(services.json_or_none(metadata) or {}), **extra}
    try:
        await pg.update(Task, task_id, {"status": done.status, "completed_at": parse_iso(completed_at),
                                        "result": services.stored_result(result), "metadata": merged})
        if result is not None:
            await services.attachment_put(ctx.redis, task_id=task_id, key="result", type="json",
                                          value=result, created_by=ctx.instance_id)
    except Exception as exc:
        log.exception("task.complete could not persist %s", task_id)
        try:
            await pg.update(Task, task_id, {"error": f"Failed to store result: {exc}",
                                            "metadata": {**merged, "persistenceError": str(exc)}})
        except Exception:
            log.exception("task.complete could not record the persistence error of %s", task_id)


@handler(
    "task.list", input=TaskListIn, output=TaskListOut, declared_rate_limit=100, mutating=False,
    limits=Limits(rate=100, timeout_ms=10_000, trip_after=5, open_ms=30_000),
    fallback=lambda data: {"tasks": [], "totalCount": 0, "hasMore": False},
    mcp=Mcp(title="List tasks", tags=("tasks",)),
)
async def task_list(ctx: Ctx, data: TaskListIn) -> TaskListOut:
    """List tasks from PostgreSQL, filtered and paginated."""
    rows, total = await services.task_query(
        status=data.status, assigned_to=data.assigned_to, priority=data.priority, limit=data.limit,
        offset=data.offset, order_by=data.order_by, order=data.order,
    )
    r = ctx.redis
    counts: list[int] = []
    if rows:
        async with r.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.zcard(keys.task_attachments(row["id"]))
            counts = await pipe.execute()
    with_attachments = [row["id"] for row, n in zip(rows, counts, strict=True) if n]
    try:
        summaries = await services.attachment_summaries(with_attachments)
    except Exception:
        log.exception("task.list could not load attachments")  # SPEC: lookup errors are swallowed
        summaries = {}
    tasks = [_listed(row, count, summaries.get(row["id"], [])) for row, count in zip(rows, counts, strict=True)]
    return TaskListOut(tasks=tasks, total_count=total, has_more=data.offset + data.limit < total)


def _listed(row: dict[str, Any], count: int, attachments: list[dict[str, Any]]) -> ListedTask:
    iso = services.iso_dt
    result_attachment = None
    for a in attachments:
        if a["key"] == "result":
            result_attachment = ResultAttachment(type=a["type"], value=a["value"], content=a["content"],
                                                 created_at=iso(a["created_at"]))
    return ListedTask(
        id=row["id"], text=row["text"], status=row["status"], priority=row["priority"],
        assigned_to=row["assigned_to"], metadata=row["metadata"], result=row["result"], error=row["error"],
        created_at=iso(row["created_at"]), updated_at=iso(row["updated_at"]),
        completed_at=iso(row["completed_at"]), attachment_count=count,
        attachment_keys=[a["key"] for a in attachments] if count else None,
        result_attachment=result_attachment,
    )


@handler(
    "task.delete", input=TaskDeleteIn, output=TaskDeleteOut, persist=True,
    mcp=Mcp(title="Delete task", tags=("tasks",), warnings=("Deletes the task and its attachments",)),
)
async def task_delete(ctx: Ctx, data: TaskDeleteIn) -> TaskDeleteOut:
    """Delete a task everywhere: Redis (hash, queues, attachments, history) and PostgreSQL."""
    r = ctx.redis
    deleted_at = iso_ms(now_ms())
    for _ in range(services.RETRIES):
        assignee = await r.hget(keys.task(data.id), "assignedTo")
        names = await r.zrange(keys.task_attachments(data.id), 0, -1)
        try:
            status = await scripts.delete_task(r, task_id=data.id, assignee=assignee or "",
                                               attachment_keys=names, now_iso=deleted_at)
            break
        except Retry:
            continue
    else:
        raise HandlerError(f"Task {data.id} kept changing; try again")
    if status is None and not (ctx.persist and await services.task_exists_in_pg(data.id)):
        raise HandlerError("Task not found")
    if ctx.persist:
        try:
            await services.task_delete_rows(data.id)
        except Exception:
            if status is None:
                raise
            log.exception("task.delete could not delete the PostgreSQL row of %s", data.id)
    await ctx.publish("task.deleted", {"id": data.id, "deletedAt": deleted_at, "deletedBy": ctx.instance_id},
                      {"instanceId": ctx.instance_id, "eventId": ctx.event_id})
    return TaskDeleteOut(id=data.id, deleted=True, deleted_at=deleted_at)
