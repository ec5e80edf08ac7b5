"""Hook handlers (SPEC §5.3.2, §10): what Claude Code's hooks call, through our bridge, the
original's bridge (JSON-RPC) or Claude Code's HTTP hooks (`POST /hooks/claude`).

All hidden from MCP. Each circuit fallback fails open: a broken hook path must never stop the
agent (SPEC §3.10). None is cached: every call has side effects (SPEC §3.4, §16 row 13).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from typing import Any

import orjson
from django.conf import settings

from claudebench.core import bus, keys
from claudebench.core.clock import event_id as new_event_id
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.errors import HookBlocked
from claudebench.core.pipeline import Ctx, Prepared
from claudebench.core.registry import Limits, Mcp, handler
from hooks import todos, validator
from hooks.schemas import (
    AgentStopIn,
    AgentStopOut,
    NotificationIn,
    NotificationOut,
    PostToolIn,
    PostToolOut,
    PreCompactIn,
    PreCompactOut,
    PreToolIn,
    PreToolOut,
    TodoWriteIn,
    TodoWriteOut,
    UserPromptIn,
    UserPromptOut,
)

log = logging.getLogger("claudebench.hooks")

HIDDEN = Mcp(visible=False)
_DAY = 86_400


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _instance(ctx: Ctx, given: str | None) -> str:
    return given or ctx.client_id or ctx.instance_id


def _session(ctx: Ctx, given: str | None, instance_id: str) -> str:
    return given or ctx.meta.session_id or instance_id


def _ts(given: int | float | None) -> int:
    return int(given) if given is not None else now_ms()


def _pre_tool_event(data: PreToolIn, instance_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    return {"tool": data.tool, "params": data.params, "sessionId": data.session_id, "instanceId": instance_id,
            "timestamp": _ts(data.timestamp), "validationResult": answer}


async def _pre_tool_prepare(ctx: Ctx, data: PreToolIn) -> Prepared:
    """Decide while the admission is on its way (the rules are in memory), so the validator's
    records and the event go in the admission's round trip: Claude Code waits for every pre-tool
    answer (B2)."""
    r, instance_id = ctx.redis, _instance(ctx, data.instance_id)
    decision, records = await validator.decide(r, data.tool, data.params)
    answer = decision.wire()
    event, eid = _pre_tool_event(data, instance_id, answer), new_event_id()

    def send(gate: str) -> Awaitable[tuple[bool, ...]]:
        published = bus.publish_gated("hook.pre_tool.executed", event, gate=gate, id=eid,
                                      correlation_id=ctx.meta.correlation_id)
        recorded = validator.record_gated(r, gate, data.tool, data.params, decision, records, actor=ctx.actor,
                                          session_id=data.session_id, instance_id=instance_id)
        return _parts_written(published, recorded)

    async def resend(flags: tuple[bool, ...]) -> None:
        published, recorded = flags
        if not published:  # same id: exactly once even if it had been delivered after all
            await ctx.publish("hook.pre_tool.executed", event, id=eid)
        if not recorded:
            await validator.record(r, data.tool, data.params, decision, records, actor=ctx.actor,
                                   session_id=data.session_id, instance_id=instance_id)

    return Prepared((decision, answer), send, resend)


async def _parts_written(published: Awaitable[Any], recorded: Awaitable[bool]) -> tuple[bool, ...]:
    # Both replies come in the admission's batch, in this order, so awaiting one after the other
    # waits no longer than gather would, and makes no task per part. Each is awaited even when
    # the other failed (a NOSCRIPT reload happens when its reply is awaited).
    results: list[Any] = []
    error: Exception | None = None
    for part in (published, recorded):
        try:
            results.append(await part)
        except Exception as exc:
            error = error or exc
    if error is not None:
        raise error
    delivery, wrote = results
    return delivery[0] != 2, wrote  # 2: the publish found no gate


@handler(
    "hook.pre_tool", input=PreToolIn, output=PreToolOut, class_name="PreToolHookHandler",
    declared_rate_limit=1000, limits=Limits(rate=1000, timeout_ms=3_000, trip_after=10, open_ms=30_000),
    fallback=lambda data: {"allow": True, "reason": "Hook validation circuit breaker open - allowing by default"},
    mcp=HIDDEN, prepare=_pre_tool_prepare,
)
async def hook_pre_tool(ctx: Ctx, data: PreToolIn) -> PreToolOut:
    """Check a tool call before it runs: allow it, block it with a reason, or rewrite its input."""
    if ctx.prepared is not None:  # decided before the admission; its writes were in that round trip
        decision, answer = ctx.prepared.value
        await ctx.prepared.written()
    else:
        r, instance_id = ctx.redis, _instance(ctx, data.instance_id)
        decision, records = await validator.decide(r, data.tool, data.params)
        answer = decision.wire()
        # The validator's records and the event are independent: one round trip for both.
        await asyncio.gather(
            validator.record(r, data.tool, data.params, decision, records, actor=ctx.actor,
                             session_id=data.session_id, instance_id=instance_id),
            ctx.publish("hook.pre_tool.executed", _pre_tool_event(data, instance_id, answer)),
        )
    if not decision.allow and settings.CB_HOOK_BLOCK_AS_ERROR:
        # Opt-in: answer a block as JSON-RPC -32003 / REST 403 instead of a result with allow:false.
        # Both make the original's bridge exit 2 (SPEC §2.8); the result form carries metadata.
        raise HookBlocked(decision.reason, data=decision.reason)
    return PreToolOut.model_validate(answer)


def _has_error(result: Any) -> bool:
    return isinstance(result, dict) and ("error" in result or "failed" in result)


@handler(
    "hook.post_tool", input=PostToolIn, output=PostToolOut, class_name="PostToolHookHandler",
    declared_rate_limit=1000, limits=Limits(rate=1000, timeout_ms=5_000, trip_after=10, open_ms=30_000),
    fallback=lambda data: {"processed": True}, mcp=HIDDEN,
)
async def hook_post_tool(ctx: Ctx, data: PostToolIn) -> PostToolOut:
    """Log a finished tool call, count its errors, and mirror Claude Code task tools onto tasks."""
    r, now = ctx.redis, now_ms()
    instance_id = _instance(ctx, data.instance_id)
    has_error = _has_error(data.result)
    processed: Any = True
    async with r.pipeline(transaction=False) as pipe:
        log_key = keys.tool_log(data.tool, now)
        pipe.hset(log_key, mapping={"tool": data.tool, "result": _dumps(data.result)[:1000], "timestamp": iso_ms(now)})
        pipe.expire(log_key, _DAY)
        pipe.hincrby(keys.metrics_tool(data.tool), "executions", 1)
        if has_error:
            pipe.hincrby(keys.metrics_tool(data.tool), "errors", 1)
            pipe.incr(keys.errors(data.tool))
            pipe.expire(keys.errors(data.tool), 300)
        replies = await pipe.execute()
    res = data.result if isinstance(data.result, dict) else {}
    if data.tool == "file.write" and res.get("path"):
        await r.sadd(keys.CREATED_FILES, str(res["path"]))
        processed = {"acknowledged": True, "path": res["path"]}
    elif data.tool == "task.create" and res.get("id"):
        await r.sadd(keys.CREATED_TASKS, str(res["id"]))
        processed = {"acknowledged": True, "taskId": res["id"]}
    elif data.tool == "api.call" and res.get("status") is not None:
        await r.hincrby(keys.STATS_API, f"status_{res['status']}", 1)
        processed = {"acknowledged": True, "status": res["status"], "cached": False}
    elif data.tool in todos.CLAUDE_TASK_TOOLS:
        session_id = _session(ctx, data.session_id, instance_id)
        agent = {k: v for k, v in {"agentId": (data.params or {}).get("agent_id") if isinstance(data.params, dict)
                                   else None}.items() if v}
        task_id = await todos.claude_task_sync(ctx, tool=data.tool, params=data.params, result=data.result,
                                               instance_id=instance_id, session_id=session_id, agent=agent)
        if task_id:
            processed = {"acknowledged": True, "taskId": task_id}
    if has_error and replies[-2] > 5:
        await ctx.publish("alert.tool_errors", {"tool": data.tool, "errorCount": replies[-2],
                                                "message": f"Tool {data.tool} has failed {replies[-2]} times "
                                                           "in the last 5 minutes"})
    await ctx.publish("hook.post_tool.executed", {
        "tool": data.tool, "params": data.params, "result": data.result, "sessionId": data.session_id,
        "instanceId": instance_id, "timestamp": _ts(data.timestamp), "executionTime": data.execution_time or 0,
        "success": True if data.success is None else data.success, "hasError": has_error, "processed": True,
    })
    return PostToolOut(processed=processed)


_PROMPT_WARNINGS = (
    (re.compile(r"rm\s+-rf\s+/", re.IGNORECASE), "⚠️ Destructive command detected"),
    (re.compile(r"drop\s+database", re.IGNORECASE), "⚠️ Database destruction command"),
    (re.compile(r"password|secret|api[_\s]?key", re.IGNORECASE), "⚠️ Sensitive information mentioned"),
)


@handler(
    "hook.user_prompt", input=UserPromptIn, output=UserPromptOut, class_name="UserPromptHookHandler",
    declared_rate_limit=100, limits=Limits(rate=100, timeout_ms=3_000, trip_after=5, open_ms=30_000),
    fallback=lambda data: {}, mcp=HIDDEN,
)
async def hook_user_prompt(ctx: Ctx, data: UserPromptIn) -> UserPromptOut:
    """Record a submitted prompt and append warnings about destructive or sensitive content."""
    r, now = ctx.redis, now_ms()
    instance_id = _instance(ctx, data.instance_id)
    key = keys.prompt_history(now)
    await r.hset(key, mapping={"prompt": data.prompt, "context": _dumps(data.context), "timestamp": iso_ms(now)})
    await r.expire(key, _DAY)
    modified: str | None = None
    found = [text for regex, text in _PROMPT_WARNINGS if regex.search(data.prompt)]
    if found:
        modified = data.prompt + "\n\n" + "\n".join(found)
    if data.context.get("enhance") is True:
        lowered = data.prompt.lower()
        extras = [text for cond, text in (("test" in lowered, "Remember to write comprehensive tests"),
                                          ("implement" in lowered or "create" in lowered,
                                           "Follow clean code principles")) if cond]
        if extras:
            modified = (modified or data.prompt) + "\n\nContext: " + ", ".join(extras)
    payload: dict[str, Any] = {"originalPrompt": data.prompt, "prompt": data.prompt, "context": data.context,
                               "sessionId": data.session_id, "instanceId": instance_id,
                               "timestamp": _ts(data.timestamp), "modified": modified is not None}
    if modified is not None:
        payload["modifiedPrompt"] = modified
    await ctx.publish("hook.user_prompt.executed", payload)
    return UserPromptOut(modified=modified)


@handler(
    "hook.todo_write", input=TodoWriteIn, output=TodoWriteOut, persist=True, class_name="TodoWriteHookHandler",
    declared_rate_limit=50, limits=Limits(rate=50, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    fallback=lambda data: {"processed": True}, mcp=HIDDEN,
)
async def hook_todo_write(ctx: Ctx, data: TodoWriteIn) -> TodoWriteOut:
    """Turn Claude Code's TodoWrite list into tasks: create, start and complete them, no duplicates."""
    instance_id = data.instance_id or ctx.client_id or ctx.instance_id or "default"
    session_id = _session(ctx, data.session_id, instance_id)
    items = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in data.todos]
    changes = await todos.todo_write(ctx, items, instance_id=instance_id, session_id=session_id)
    summary = {"added": changes.added, "completed": changes.completed, "modified": changes.modified}
    await ctx.publish("hook.todo_write.executed", {
        "stats": changes.stats, "changes": summary,
        # SPEC §10.9 (b): additive fields, so the session state processor can follow the list.
        "todos": items, "sessionId": session_id, "instanceId": instance_id, "timestamp": _ts(data.timestamp),
    })
    return TodoWriteOut(processed=True, summary=summary)


@handler(
    "hook.agent_stop", input=AgentStopIn, output=AgentStopOut, class_name="HookAgentStopHandler",
    declared_rate_limit=50, limits=Limits(rate=50, timeout_ms=3_000, trip_after=5, open_ms=30_000),
    fallback=lambda data: {"acknowledged": True, "cleanedUp": False}, mcp=HIDDEN,
)
async def hook_agent_stop(ctx: Ctx, data: AgentStopIn) -> AgentStopOut:
    """Note that an agent stopped; the main agent's instance is marked STOPPING."""
    r, cleaned = ctx.redis, False
    try:
        if data.agent_type == "main" and await r.exists(keys.instance(data.instance_id)):
            await r.hset(keys.instance(data.instance_id), mapping={
                "status": "STOPPING", "lastSeen": str(now_ms()), "stoppedAt": str(int(data.timestamp))})
            cleaned = True
        stream = keys.agent_stop_events(data.instance_id)
        await r.xadd(stream, {"instanceId": data.instance_id, "sessionId": data.session_id,
                              "agentType": data.agent_type, "timestamp": str(int(data.timestamp))})
        await r.expire(stream, 3600)
    except Exception:  # SPEC §5.3.2: errors are swallowed, the stop is still acknowledged
        log.exception("agent_stop bookkeeping failed for %s", data.instance_id)
    await ctx.publish("agent.stopped", {"instanceId": data.instance_id, "sessionId": data.session_id,
                                        "agentType": data.agent_type, "timestamp": int(data.timestamp),
                                        "cleanedUp": cleaned})
    return AgentStopOut(acknowledged=True, cleaned_up=cleaned)


@handler(
    "hook.notification", input=NotificationIn, output=NotificationOut, class_name="HookNotificationHandler",
    declared_rate_limit=100, limits=Limits(rate=100, timeout_ms=2_000, trip_after=10, open_ms=30_000),
    fallback=lambda data: {"received": True, "broadcasted": False}, mcp=HIDDEN,
)
async def hook_notification(ctx: Ctx, data: NotificationIn) -> NotificationOut:
    """Store a Claude Code notification for its session and broadcast it."""
    r = ctx.redis
    ts = str(int(data.timestamp))
    fields = {"message": data.message, "type": data.type, "instanceId": data.instance_id,
              "sessionId": data.session_id, "timestamp": ts}
    async with r.pipeline(transaction=False) as pipe:
        pipe.xadd(keys.notifications(data.session_id), fields)
        pipe.expire(keys.notifications(data.session_id), _DAY)
        latest = keys.notification_latest(data.instance_id)
        pipe.hset(latest, mapping={"message": data.message, "type": data.type, "sessionId": data.session_id,
                                   "timestamp": ts})
        pipe.expire(latest, 3600)
        pipe.incr(keys.metrics_notifications(data.type))
        pipe.expire(keys.metrics_notifications(data.type), _DAY)
        if data.type == "error":
            pipe.incr(keys.errors(data.instance_id))
            pipe.expire(keys.errors(data.instance_id), 300)
        elif data.type == "success":
            pipe.incr(keys.metrics_success(data.instance_id))
            pipe.expire(keys.metrics_success(data.instance_id), 3600)
        await pipe.execute()
    await ctx.publish("notification.received", {"message": data.message, "notificationType": data.type,
                                                "instanceId": data.instance_id, "sessionId": data.session_id,
                                                "timestamp": int(data.timestamp)})
    return NotificationOut(received=True, broadcasted=True)


@handler(
    "hook.pre_compact", input=PreCompactIn, output=PreCompactOut, class_name="HookPreCompactHandler",
    declared_rate_limit=10, limits=Limits(rate=10, timeout_ms=5_000, trip_after=3, open_ms=30_000),
    fallback=lambda data: {"acknowledged": True, "stateSaved": False}, mcp=HIDDEN,
)
async def hook_pre_compact(ctx: Ctx, data: PreCompactIn) -> PreCompactOut:
    """Before Claude Code compacts its context, keep a 2-hour snapshot of the instance's state."""
    r, ts = ctx.redis, int(data.timestamp)
    sid, iid = data.session_id, data.instance_id
    instance = await r.hgetall(keys.instance(iid))
    tasks = await _assigned_tasks(r, iid)
    notes = await r.xrevrange(keys.notifications(sid), count=10)
    async with r.pipeline(transaction=False) as pipe:
        parts = {
            "instance": instance or {"id": iid},
            "tasks": {"count": str(len(tasks)), "tasks": _dumps(tasks)},
            "notifications": {"count": str(len(notes)), "data": _dumps([fields for _, fields in notes])},
            "metadata": {"sessionId": sid, "instanceId": iid, "contextSize": str(data.context_size),
                         "timestamp": str(ts), "createdAt": iso_ms(now_ms())},
        }
        for part, mapping in parts.items():
            pipe.hset(keys.compact_snapshot(sid, ts, part), mapping=mapping)
            pipe.expire(keys.compact_snapshot(sid, ts, part), 7200)
        pipe.incr(keys.metrics_compactions(sid))
        pipe.expire(keys.metrics_compactions(sid), _DAY)
        pipe.zadd(keys.context_history(sid), {f"{data.context_size}:{ts}": ts})
        pipe.expire(keys.context_history(sid), _DAY)
        replies = await pipe.execute()
    await ctx.publish("context.pre_compact", {
        "sessionId": sid, "instanceId": iid, "contextSize": data.context_size, "compactionCount": replies[-4],
        "snapshotKey": f"cb:snapshot:{sid}:{ts}", "timestamp": ts, "tasksPreserved": len(tasks)})
    return PreCompactOut(acknowledged=True, state_saved=True)


async def _assigned_tasks(r, instance_id: str) -> list[dict[str, str]]:
    """Task hashes assigned to an instance (SCAN, task hashes only: SPEC §16 row 26)."""
    names = [k async for k in r.scan_iter(match=keys.TASK_PATTERN, count=500) if keys.is_task_hash_key(k)]
    if not names:
        return []
    async with r.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(name, "id", "text", "status", "assignedTo", "priority")
        rows = await pipe.execute()
    return [{"id": i, "text": t or "", "status": s or "", "priority": p or ""}
            for i, t, s, a, p in rows if i and a == instance_id]


from hooks import session_handlers  # noqa: E402, F401  (session.* live beside the hooks)
