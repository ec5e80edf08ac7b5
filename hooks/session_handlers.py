"""Session handlers (SPEC §5.3.5): read, rehydrate and snapshot what the hooks recorded."""

from __future__ import annotations

from typing import Any

import orjson

from claudebench.core import keys
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.errors import HandlerError
from claudebench.core.pipeline import Ctx
from claudebench.core.registry import Limits, Mcp, handler
from hooks import sessions
from hooks.schemas import (
    SessionRehydrateIn,
    SessionRehydrateOut,
    SessionStateGetIn,
    SessionStateGetOut,
    SnapshotCreateIn,
    SnapshotCreateOut,
)


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return default


def _context_out(ctx: dict[str, Any]) -> dict[str, Any]:
    out = {"lastTasks": [t for t in ctx.get("lastTasks", []) if isinstance(t, dict)],
           "lastTools": [str(t) for t in ctx.get("lastTools", [])], "activeTodos": ctx.get("activeTodos", [])}
    if ctx.get("lastPrompt"):
        out["lastPrompt"] = ctx["lastPrompt"]
    return out


@handler(
    "session.state.get", input=SessionStateGetIn, output=SessionStateGetOut, class_name="SessionStateGetHandler",
    declared_rate_limit=50, limits=Limits(rate=50, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    # Not cached (the original: 60 s): hook events land through the session processor, which runs no
    # handler, so no cache scope would drop a stale answer.
    mutating=False, mcp=Mcp(title="Session state", tags=("sessions",)),
)
async def session_state_get(ctx: Ctx, data: SessionStateGetIn) -> SessionStateGetOut:
    """The hook events recorded for a Claude Code session, or a condensed view of them."""
    r = ctx.redis
    if data.condensed:
        c = await sessions.session_context(r, data.session_id)
        now = now_ms()
        pre_tool = int(c["eventCounts"].get("hook.pre_tool", 0))
        condensed = {"tasks": c["lastTasks"], "tools": [{"name": t, "count": pre_tool, "lastUsed": now}
                                                         for t in c["lastTools"]],
                     "prompts": [{"prompt": c["lastPrompt"], "timestamp": now}] if c.get("lastPrompt") else [],
                     "todos": c["activeTodos"]}
        return SessionStateGetOut.model_validate({"sessionId": data.session_id, "events": [],
                                                  "condensed": condensed})
    stream = keys.session_stream(data.session_id)
    if data.from_timestamp is not None and data.to_timestamp is not None:
        entries = await r.xrange(stream, min=int(data.from_timestamp), max=int(data.to_timestamp))
    else:
        entries = await r.xrange(stream)
    events, counts = [], {}
    for entry_id, f in entries:
        if data.event_types and f.get("eventType") not in data.event_types:
            continue
        kind = f.get("eventType", "unknown")
        counts[kind] = counts.get(kind, 0) + 1
        event = {"eventId": f.get("eventId", entry_id), "eventType": kind,
                 "timestamp": int(f.get("timestamp") or entry_id.split("-")[0]),
                 "data": {"params": _loads(f.get("params"), None), "result": _loads(f.get("result"), None)}}
        labels = _loads(f.get("labels"), None)
        if isinstance(labels, list):
            event["labels"] = [str(x) for x in labels]
        events.append(event)
    events = events[: data.limit]
    summary = {"totalEvents": len(events), "eventCounts": counts}
    if events:
        summary["firstEvent"], summary["lastEvent"] = events[0]["timestamp"], events[-1]["timestamp"]
    return SessionStateGetOut.model_validate({"sessionId": data.session_id, "events": events, "summary": summary})


@handler(
    "session.rehydrate", input=SessionRehydrateIn, output=SessionRehydrateOut, class_name="SessionRehydrateHandler",
    declared_rate_limit=20, limits=Limits(rate=20, timeout_ms=10_000, trip_after=3, open_ms=60_000),
    mcp=Mcp(title="Rehydrate session", tags=("sessions",)),
)
async def session_rehydrate(ctx: Ctx, data: SessionRehydrateIn) -> SessionRehydrateOut:
    """Bring a session back after a restart or compaction: its last snapshot and working context."""
    r, now = ctx.redis, now_ms()
    await r.hset(keys.session_state(data.session_id), mapping={
        "instanceId": data.instance_id, "rehydratedAt": str(now), "isActive": "true"})
    if data.snapshot_id:
        snap = await r.hgetall(keys.snapshot(data.session_id, data.snapshot_id))
        if not snap:
            raise HandlerError(f"Snapshot not found: {data.snapshot_id}")
        context = _loads(snap.get("context"), {})
    else:
        snap, context = await sessions.stored_context(r, data.session_id)
    if not context:
        context = await sessions.session_context(r, data.session_id)
    if data.from_timestamp is not None:
        context = await _replay(r, data.session_id, int(data.from_timestamp), dict(context))
    snapshot = None
    if snap:
        snapshot = {"id": snap.get("snapshotId", data.snapshot_id), "timestamp": int(snap.get("timestamp") or 0),
                    "eventCount": int(snap.get("eventCount") or 0)}
    events = int(await r.hget(keys.session_state(data.session_id), "eventCount") or 0)
    await ctx.publish("session.rehydrated", {"sessionId": data.session_id, "instanceId": data.instance_id,
                                             "snapshotId": snapshot["id"] if snapshot else None,
                                             "eventCount": events})
    await r.hincrby(keys.METRICS_REHYDRATIONS, "count", 1)
    await r.hset(keys.METRICS_REHYDRATIONS, "lastRehydration", iso_ms(now))
    return SessionRehydrateOut.model_validate({"sessionId": data.session_id, "rehydrated": True,
                                               "snapshot": snapshot, "context": _context_out(context)})


async def _replay(r, session_id: str, from_ms: int, context: dict[str, Any]) -> dict[str, Any]:
    """Apply up to 100 events newer than `from_ms` on top of a snapshot's context."""
    tools = list(context.get("lastTools") or [])
    for _, f in await r.xrange(keys.session_stream(session_id), min=from_ms + 1, count=100):
        params = _loads(f.get("params"), {})
        if not isinstance(params, dict):
            continue
        kind = f.get("eventType")
        if kind == "hook.user_prompt" and isinstance(params.get("prompt"), str):
            context["lastPrompt"] = params["prompt"]
        elif kind in ("hook.pre_tool", "hook.post_tool") and isinstance(params.get("tool"), str):
            tools = [params["tool"], *[t for t in tools if t != params["tool"]]][:10]
        elif kind == "hook.todo_write" and isinstance(params.get("todos"), list):
            context["activeTodos"] = params["todos"]
    context["lastTools"] = tools
    return context


@handler(
    "session.snapshot.create", input=SnapshotCreateIn, output=SnapshotCreateOut, persist=True,
    class_name="SessionSnapshotCreateHandler", declared_rate_limit=10,
    limits=Limits(rate=10, timeout_ms=15_000, trip_after=3, open_ms=60_000),
    mcp=Mcp(title="Snapshot session", tags=("sessions",)),
)
async def session_snapshot_create(ctx: Ctx, data: SnapshotCreateIn) -> SnapshotCreateOut:
    """Store a snapshot of a session's recorded events and working context."""
    r = ctx.redis
    snap = await sessions.snapshot_create(r, session_id=data.session_id, reason=data.reason,
                                          instance_id=data.instance_id, metadata=data.metadata or {})
    if snap is None:
        raise HandlerError(f"No events to snapshot for session {data.session_id}")
    await ctx.publish("session.snapshot.created", {
        "snapshotId": snap["snapshotId"], "sessionId": data.session_id, "instanceId": data.instance_id,
        "reason": data.reason, "eventCount": snap["eventCount"], "size": snap["size"], "timestamp": snap["timestamp"]})
    await r.hincrby(keys.METRICS_SNAPSHOTS, "count", 1)
    await r.hincrby(keys.METRICS_SNAPSHOTS, f"reason:{data.reason}", 1)
    await r.hset(keys.METRICS_SNAPSHOTS, "lastSnapshot", iso_ms(snap["timestamp"]))
    return SnapshotCreateOut(snapshot_id=snap["snapshotId"], session_id=data.session_id,
                             timestamp=snap["timestamp"], size=snap["size"], event_count=snap["eventCount"])
