"""TodoWrite lists and Claude Code's own task tools, kept in sync with our tasks (SPEC §10.5, §9.5).

Since Claude Code 2.1.16 the TaskCreate / TaskUpdate tools (and the TaskCreated / TaskCompleted
hook events) replace TodoWrite; those are keyed by Claude's task id instead of the todo text.
Both follow the same switch, `config.set {key: "todowrite.autocreate", value: false}`, which stops
creating tasks; tasks already mapped keep following their todo.

Task changes go through `ctx.call`, so they run the full pipeline of task.* and publish their own
events. Every per-item failure is logged and the rest of the list is still processed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from claudebench.core import keys, scripts
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.errors import CbError
from claudebench.core.pipeline import Ctx

log = logging.getLogger("claudebench.hooks.todos")

AUTOCREATE_KEY = "todowrite.autocreate"
CLAUDE_TASK_TOOLS = ("TaskCreate", "TaskUpdate", "TaskCreated", "TaskCompleted")
_DAY = 86_400
_HIGH_PRIORITY = ("important", "critical", "high-priority")


@dataclass
class TodoChanges:
    added: int = 0
    completed: int = 0
    modified: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def autocreate_enabled(r) -> bool:
    """SPEC §10.5 step 4: on unless `cb:config:todowrite.autocreate` says otherwise."""
    value = await r.get(keys.config(AUTOCREATE_KEY))
    return value is None or value == "true"


async def _ensure_registered(ctx: Ctx, instance_id: str) -> None:
    if await ctx.redis.exists(keys.instance(instance_id)):
        return
    try:
        await ctx.call("system.register", {"id": instance_id, "roles": ["worker"]}, client_id=instance_id)
    except Exception as exc:  # SPEC §10.5 step 1: errors ignored (the task is then left unassigned)
        log.info("todo_write could not register %s: %s", instance_id, exc)


async def _mapped(r, session_id: str, content: str) -> str | None:
    """The task of a todo: this session's mapping, else a global one whose task is still pending."""
    task_id = await r.hget(keys.todo_mapping(session_id), content)
    if task_id:
        return task_id
    task_id = await r.hget(keys.TODO_MAPPING_GLOBAL, content)
    if not task_id:
        return None
    if await r.hget(keys.task(task_id), "status") == "pending":
        await r.hset(keys.todo_mapping(session_id), content, task_id)
        await r.expire(keys.todo_mapping(session_id), _DAY)
        return task_id
    await r.hdel(keys.TODO_MAPPING_GLOBAL, content)  # stale: that task moved on
    return None


async def _start(ctx: Ctx, task_id: str, instance_id: str, metadata: dict[str, Any]) -> None:
    """Assign to the reporting instance, then mark in progress (SPEC §10.5 step 4)."""
    try:
        await ctx.call("task.assign", {"taskId": task_id, "instanceId": instance_id}, client_id=instance_id)
    except CbError as exc:
        log.info("todo task %s not assigned to %s: %s", task_id, instance_id, exc)
    await ctx.call("task.update", {"id": task_id, "updates": {"status": "in_progress", "priority": 75,
                                                              "metadata": metadata}}, client_id=instance_id)


async def _complete(ctx: Ctx, task_id: str, instance_id: str, metadata: dict[str, Any]) -> None:
    stamp = {"completedBy": "todo_write", "completedAt": iso_ms(now_ms())}
    try:
        await ctx.call("task.complete", {"id": task_id, "workerId": instance_id, "result": stamp},
                       client_id=instance_id)
    except CbError as exc:  # "Task not assigned" and friends: close it by update instead
        log.debug("todo task %s completed by update (%s)", task_id, exc)
        await ctx.call("task.update", {"id": task_id, "updates": {"status": "completed",
                                                                  "metadata": {**stamp, **metadata}}},
                       client_id=instance_id)


async def _create(ctx: Ctx, *, text: str, status: str, instance_id: str, session_id: str,
                  metadata: dict[str, Any]) -> str:
    out = await ctx.call("task.create", {"text": text[:500], "priority": 75 if status == "in_progress" else 50,
                                         "metadata": {**metadata, "sessionId": session_id}},
                         client_id=instance_id)
    task_id = out["id"]
    r = ctx.redis
    async with r.pipeline(transaction=False) as pipe:
        pipe.lpush(keys.session_tasks(session_id), task_id)  # SPEC §16 row 39: now written
        pipe.ltrim(keys.session_tasks(session_id), 0, 99)
        pipe.expire(keys.session_tasks(session_id), 7 * _DAY)
        await pipe.execute()
    if status == "in_progress":
        await _start(ctx, task_id, instance_id, {"startedBy": "todo_write", "startedAt": iso_ms(now_ms())})
    return task_id


async def _create_todo_task(ctx: Ctx, todo: dict[str, Any], instance_id: str, session_id: str) -> None:
    task_id = await _create(ctx, text=todo["content"], status=todo["status"], instance_id=instance_id,
                            session_id=session_id,
                            metadata={"source": "todo_write", "activeForm": todo.get("activeForm")})
    r = ctx.redis
    async with r.pipeline(transaction=False) as pipe:
        pipe.hset(keys.todo_mapping(session_id), todo["content"], task_id)
        pipe.expire(keys.todo_mapping(session_id), _DAY)
        pipe.hset(keys.TODO_MAPPING_GLOBAL, todo["content"], task_id)
        pipe.expire(keys.TODO_MAPPING_GLOBAL, _DAY)
        pipe.xadd(keys.stream("task.create"), {"data": _dumps({  # SPEC §6.1 legacy record
            "id": task_id, "type": "task.create", "timestamp": now_ms(),
            "params": {"id": task_id, "title": todo["content"], "text": todo["content"],
                       "status": todo["status"], "priority": 75 if todo["status"] == "in_progress" else 50}})})
        await pipe.execute()


async def _apply_status(ctx: Ctx, todo: dict[str, Any], task_id: str, instance_id: str) -> None:
    meta = {"activeForm": todo.get("activeForm"), "lastUpdatedBy": "todo_write"}
    status = todo["status"]
    if status == "completed":
        await _complete(ctx, task_id, instance_id, {"activeForm": todo.get("activeForm")})
    elif status == "in_progress":
        await _start(ctx, task_id, instance_id, meta)
    else:
        await ctx.call("task.update", {"id": task_id, "updates": {"status": "pending", "priority": 50,
                                                                  "metadata": meta}}, client_id=instance_id)


def _stats(todos: list[dict[str, Any]]) -> dict[str, Any]:
    total = len(todos)
    counts = {s: sum(1 for t in todos if t["status"] == s) for s in ("pending", "in_progress", "completed")}
    rate = round(counts["completed"] / total * 100, 2) if total else 0
    return {"total": total, **counts, "completionRate": rate}


async def todo_write(ctx: Ctx, todos: list[dict[str, Any]], *, instance_id: str, session_id: str) -> TodoChanges:
    """SPEC §10.5 steps 1–6; the handler publishes (step 7)."""
    r = ctx.redis
    await _ensure_registered(ctx, instance_id)
    now_iso = iso_ms(now_ms())
    previous_raw = await scripts.todo_state_update(r, instance_id=instance_id, todos=_dumps(todos), now_iso=now_iso)
    previous = {t.get("content"): t for t in orjson.loads(previous_raw) if isinstance(t, dict)}
    new = [t for t in todos if t["content"] not in previous]
    changed = [t for t in todos if t["content"] in previous and previous[t["content"]].get("status") != t["status"]]
    completed = [t for t in changed if t["status"] == "completed"]
    stats = _stats(todos)
    await _record_state(r, todos, changed, stats, instance_id, now_iso)
    enabled = await autocreate_enabled(r)
    for todo in new:
        if todo["status"] == "completed" or not enabled:
            continue
        try:
            if await _mapped(r, session_id, todo["content"]) is None:
                await _create_todo_task(ctx, todo, instance_id, session_id)
        except Exception:
            log.exception("todo_write could not create a task for %r", todo["content"])
    for todo in changed:
        try:
            task_id = await _mapped(r, session_id, todo["content"])
            if task_id is None:
                if enabled:
                    await _create_todo_task(ctx, todo, instance_id, session_id)
                continue
            await _apply_status(ctx, todo, task_id, instance_id)
        except Exception:
            log.exception("todo_write could not apply %r → %s", todo["content"], todo["status"])
    await _side_records(r, todos, completed, instance_id, session_id, now_iso)
    return TodoChanges(added=len(new), completed=len(completed), modified=len(changed), stats=stats)


async def _record_state(r, todos, changed, stats, instance_id: str, now_iso: str) -> None:
    """SPEC §10.5 step 3 (current list and history are stored by todo_state_update.lua)."""
    async with r.pipeline(transaction=False) as pipe:
        pipe.delete(keys.TODOS_AGGREGATE)
        for todo in todos:
            pipe.rpush(keys.TODOS_AGGREGATE, _dumps({**todo, "instanceId": instance_id, "timestamp": now_iso}))
        pipe.expire(keys.TODOS_AGGREGATE, 3600)
        for todo in changed:
            pipe.lpush(keys.TODOS_STATUS_CHANGES, _dumps({"todo": todo["content"], "status": todo["status"],
                                                          "timestamp": now_iso, "instanceId": instance_id}))
        pipe.ltrim(keys.TODOS_STATUS_CHANGES, 0, 99)
        pipe.expire(keys.TODOS_STATUS_CHANGES, _DAY)
        pipe.hset(keys.todos_stats(instance_id), mapping={
            **{k: str(v) for k, v in stats.items()}, "completion_rate": str(stats["completionRate"]),
            "last_updated": now_iso})
        pipe.expire(keys.todos_stats(instance_id), 3600)
        await pipe.execute()


async def _side_records(r, todos, completed, instance_id: str, session_id: str, now_iso: str) -> None:
    """SPEC §10.5 step 6: high-priority flag, completed notifications, cleanup marker, count."""
    async with r.pipeline(transaction=False) as pipe:
        if any(word in t["content"].lower() for t in todos for word in _HIGH_PRIORITY):
            pipe.set(keys.TODOS_HIGH_PRIORITY, "true", ex=3600)
        for todo in completed:
            pipe.lpush(keys.TODOS_COMPLETED_NOTIFICATIONS, _dumps({"todo": todo["content"], "completedAt": now_iso,
                                                                   "instanceId": instance_id}))
        if completed:
            pipe.ltrim(keys.TODOS_COMPLETED_NOTIFICATIONS, 0, 49)
            pipe.expire(keys.TODOS_COMPLETED_NOTIFICATIONS, _DAY)
            pipe.set(keys.TODOS_CLEANUP, "scheduled", ex=_DAY)
        pipe.set(keys.todo_limits(session_id), len(todos), ex=3600)
        await pipe.execute()


# --- Claude Code's task tools (2.1.16+) ---------------------------------------------------------------
def _claude_task(tool: str, params: Any, result: Any) -> dict[str, Any] | None:
    """Normalise TaskCreate/TaskUpdate tool calls and TaskCreated/TaskCompleted events to
    {id, subject?, description?, status?, activeForm?}; None when there is no Claude task id."""
    p = params if isinstance(params, dict) else {}
    if tool == "TaskCreate":
        res = result if isinstance(result, dict) else {}
        task = res.get("task") if isinstance(res.get("task"), dict) else {}
        task_id = task.get("id") or res.get("taskId") or p.get("taskId")
        return {"id": str(task_id), "subject": p.get("subject") or task.get("subject"),
                "description": p.get("description"), "activeForm": p.get("activeForm"),
                "status": "pending", "create": True} if task_id else None
    if tool == "TaskUpdate":
        task_id = p.get("taskId")
        return {"id": str(task_id), "subject": p.get("subject"), "description": p.get("description"),
                "activeForm": p.get("activeForm"), "status": p.get("status"), "create": False} if task_id else None
    if tool in ("TaskCreated", "TaskCompleted"):
        task_id = p.get("task_id")
        return {"id": str(task_id), "subject": p.get("task_subject"), "description": p.get("task_description"),
                "status": "completed" if tool == "TaskCompleted" else "pending",
                "owner": p.get("teammate_name"), "create": tool == "TaskCreated"} if task_id else None
    return None


async def claude_task_sync(ctx: Ctx, *, tool: str, params: Any, result: Any, instance_id: str,
                           session_id: str, agent: dict[str, str] | None = None) -> str | None:
    """Mirror one Claude Code task change onto our task keyed by Claude's task id; returns our id."""
    item = _claude_task(tool, params, result)
    if item is None:
        return None
    r = ctx.redis
    mapping = keys.claude_task_mapping(session_id)
    task_id = await r.hget(mapping, item["id"])
    status = item.get("status")
    if task_id is None:
        if status == "deleted" or not await autocreate_enabled(r):
            return None
        await _ensure_registered(ctx, instance_id)
        subject = item.get("subject") or f"Claude task {item['id']}"
        metadata = {"source": "claude_task", "claudeTaskId": item["id"], "description": item.get("description"),
                    "activeForm": item.get("activeForm"), **(agent or {})}
        task_id = await _create(ctx, text=subject, status="pending", instance_id=instance_id,
                                session_id=session_id, metadata={k: v for k, v in metadata.items() if v is not None})
        await r.hset(mapping, item["id"], task_id)
        await r.expire(mapping, 7 * _DAY)
        if item["create"]:
            return task_id
    elif item["create"]:
        return task_id  # TaskCreated and the TaskCreate tool call both report one creation
    await _claude_task_update(ctx, item, task_id, instance_id, mapping)
    return task_id


async def _claude_task_update(ctx: Ctx, item: dict[str, Any], task_id: str, instance_id: str, mapping: str) -> None:
    status = item.get("status")
    meta = {k: v for k, v in {"activeForm": item.get("activeForm"), "description": item.get("description"),
                              "lastUpdatedBy": "claude_task"}.items() if v is not None}
    if item.get("subject"):
        await ctx.call("task.update", {"id": task_id, "updates": {"text": item["subject"][:500]}},
                       client_id=instance_id)
    current = await ctx.redis.hget(keys.task(task_id), "status")
    if status == "deleted":
        await ctx.call("task.delete", {"id": task_id}, client_id=instance_id)
        await ctx.redis.hdel(mapping, item["id"])
    elif status == "completed" and current not in ("completed", "failed"):
        await _complete(ctx, task_id, instance_id, meta)
    elif status == "in_progress" and current != "in_progress":
        await _start(ctx, task_id, instance_id, meta)
    elif status == "pending" and current not in ("pending", None):
        await ctx.call("task.update", {"id": task_id, "updates": {"status": "pending", "metadata": meta}},
                       client_id=instance_id)
