"""The session state processor and session helpers (SPEC §10.9).

Every hook handler publishes `hook.<type>.executed`. A `SET NX` lock on the envelope id lets
exactly one process of the cluster record each event (SPEC §16 row 39): the session stream and context in Redis (Lua), the
SessionEvent / SessionState rows, and the HookAudit row — the audit table is written here, off
the request path, so a hook call never waits for PostgreSQL.

Two ways to run it, both calling `record_hook_event`: the durable subscription in
hooks/subscribers.py (consume_streams; the default, at-least-once with retries), and `listen()`,
a pub/sub listener started in each web process when CB_SESSION_PROCESSOR is true (for servers
run without consume_streams). Both may run at once: the lock keeps the work single.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from django.conf import settings

from claudebench.core import keys, pg, pipeline, scripts, triggers
from claudebench.core.clock import dt_from_ms, now_ms, random_base36
from claudebench.core.redis import get_redis
from hooks.models import HookAudit, SessionEvent, SessionSnapshot, SessionState

log = logging.getLogger("claudebench.hooks.sessions")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def hook_state_event(channel: str, payload: dict[str, Any], timestamp: int | None = None) -> dict[str, Any]:
    """SPEC §10.9: the hook state event built from one `hook.<type>.executed` payload."""
    hook_type = channel.removeprefix("hook.").removesuffix(".executed")
    labels = [channel]
    if isinstance(payload.get("tool"), str):
        labels.append(f"tool:{payload['tool']}")
    if "prompt" in payload:
        labels.append("prompt")
    if "todos" in payload:
        labels.append("todos")
    ts = payload.get("timestamp")
    return {
        "eventId": f"hse-{now_ms()}-{random_base36(7)}",
        "hookType": hook_type,
        "sessionId": str(payload.get("sessionId") or "unknown"),
        "instanceId": str(payload.get("instanceId") or "unknown"),
        "params": payload,
        "result": payload.get("validationResult") or {"allow": True},
        "timestamp": int(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else (timestamp or now_ms()),
        "labels": labels,
    }


async def session_task_ids(r, session_id: str) -> list[str]:
    return await r.lrange(keys.session_tasks(session_id), 0, 4)


async def session_context(r, session_id: str, limit: int = 100) -> dict[str, Any]:
    return await scripts.build_session_context(
        r, session_id=session_id, task_ids=await session_task_ids(r, session_id), limit=limit
    )


async def stored_context(r, session_id: str) -> tuple[dict[str, str] | None, dict[str, Any]]:
    """SPEC §10.9 getSessionContext: the newest snapshot with a context, else a fresh build."""
    names = sorted([k async for k in r.scan_iter(match=keys.snapshot_pattern(session_id), count=200)])
    for name in reversed(names):
        snap = await r.hgetall(name)
        if snap.get("context"):
            with contextlib.suppress(orjson.JSONDecodeError):
                ctx = orjson.loads(snap["context"])
                for field in ("lastTasks", "lastTools", "activeTodos"):
                    ctx[field] = ctx.get(field) if isinstance(ctx.get(field), list) else []
                return snap, ctx
    return None, await session_context(r, session_id)


async def snapshot_create(r, *, session_id: str, reason: str, instance_id: str | None = None,
                          metadata: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Snapshot a session into Redis (30 days) and PostgreSQL; None when it has no events."""
    now = now_ms()
    snapshot_id = f"snap-{session_id}-{now}"
    count = await r.hget(keys.session_state(session_id), "eventCount")
    context = await session_context(r, session_id, limit=max(int(count or 0), 1))
    body = _dumps(context)
    events = await scripts.create_session_snapshot(r, session_id=session_id, snapshot_id=snapshot_id,
                                                   reason=reason, now_ms=now, context=body)
    if events is None:
        return None
    if metadata is not None:
        await r.hset(keys.snapshot(session_id, snapshot_id), "metadata", _dumps(metadata))
    snap = {"snapshotId": snapshot_id, "sessionId": session_id, "timestamp": now, "size": len(body),
            "eventCount": events, "context": context,
            "instanceId": instance_id or context.get("instanceId") or "unknown"}
    if settings.CB_PERSIST_SNAPSHOTS:
        try:
            await pg.upsert(SessionSnapshot, {
                "id": snapshot_id, "snapshot_id": snapshot_id, "session_id": session_id,
                "instance_id": snap["instanceId"], "reason": reason, "event_count": events, "size": len(body),
                "context": context,
                "summary": {"eventCounts": context.get("eventCounts", {}), "toolsUsed": context.get("lastTools", []),
                            "todosActive": len(context.get("activeTodos", []))},
                "event_ids": [], "from_time": dt_from_ms(now - 3_600_000), "to_time": dt_from_ms(now),
            }, conflict=("snapshot_id",))
        except Exception:
            log.exception("could not store snapshot %s in PostgreSQL", snapshot_id)
    return snap


async def record_hook_event(channel: str, envelope: dict[str, Any]) -> bool:
    """Record one `hook.<type>.executed` envelope, once per cluster. True if this call did it."""
    r = get_redis()
    lock = keys.session_processed(envelope["id"])
    if not await r.set(lock, "1", nx=True, ex=3600):
        return False
    try:
        await _record(r, channel, envelope)
    except BaseException:
        await r.delete(lock)  # let a redelivery (durable subscription) try again
        raise
    return True


async def _record(r, channel: str, envelope: dict[str, Any]) -> None:
    payload = envelope.get("payload") if isinstance(envelope.get("payload"), dict) else {}
    ev = hook_state_event(channel, payload, envelope.get("timestamp"))
    event_type = f"hook.{ev['hookType']}"
    rec = await scripts.process_hook_event(
        r, event_id=ev["eventId"], event_type=event_type, session_id=ev["sessionId"],
        instance_id=ev["instanceId"], now_ms=ev["timestamp"], params=_dumps(ev["params"]),
        result=_dumps(ev["result"]), labels=_dumps(ev["labels"]),
    )
    if rec.needs_snapshot:
        await snapshot_create(r, session_id=ev["sessionId"], reason="threshold")
    await _persist(r, ev, event_type, rec)
    await _keep_alive(r, ev["instanceId"])


async def _keep_alive(r, instance_id: str) -> None:
    """SPEC §16 row 46: the hook bridge never heartbeats, so an active Claude Code instance would
    expire 30 s after SessionStart. Any hook event of a registered instance counts as a heartbeat
    (at most one per CB_HOOK_HEARTBEAT_MS per instance, through the full pipeline)."""
    if instance_id == "unknown" or not await r.exists(keys.instance(instance_id)):
        return
    if not await r.set(keys.hook_heartbeat(instance_id), "1", nx=True, px=settings.CB_HOOK_HEARTBEAT_MS):
        return
    try:
        await pipeline.call("system.heartbeat", {"instanceId": instance_id},
                            pipeline.CallMeta(transport="internal", client_id=instance_id))
    except Exception as exc:  # a missed heartbeat is not worth failing the event over
        log.info("heartbeat for %s from its hook event failed: %s", instance_id, exc)


async def _persist(r, ev: dict[str, Any], event_type: str, rec: scripts.HookEventRecord) -> None:
    when = dt_from_ms(ev["timestamp"])
    try:
        if settings.CB_PERSIST_HOOK_AUDIT:
            result = ev["result"] if isinstance(ev["result"], dict) else {}
            await pg.insert(HookAudit, {
                "id": ev["eventId"], "hook_type": ev["hookType"], "session_id": ev["sessionId"],
                "instance_id": ev["instanceId"], "params": ev["params"], "result": ev["result"],
                # SPEC §16 row 41: allowed unless the hook explicitly said allow: false
                "allowed": result.get("allow") is not False, "modified": "modified" in result,
                "reason": result.get("reason"), "timestamp": when,
            })
        if settings.CB_PERSIST_HOOK_STATE:
            await pg.upsert(SessionEvent, {
                "id": ev["eventId"], "event_id": ev["eventId"], "session_id": ev["sessionId"],
                "instance_id": ev["instanceId"], "event_type": event_type,
                "event_data": {"params": ev["params"], "result": ev["result"]}, "labels": ev["labels"],
                "timestamp": when,
            }, conflict=("event_id",))
        if settings.CB_PERSIST_SESSION_STATE:
            ctx = await session_context(r, ev["sessionId"], limit=10)
            await pg.upsert(SessionState, {
                "id": ev["sessionId"], "session_id": ev["sessionId"], "instance_id": ev["instanceId"],
                "last_event_id": ev["eventId"], "last_activity": when, "event_count": rec.event_count,
                "is_active": True, "recent_tools": ctx["lastTools"], "current_todos": ctx["activeTodos"],
                "active_tasks": ctx["lastTasks"], "needs_snapshot": rec.event_count % 100 == 0, "is_stale": False,
            })
    except Exception:
        log.exception("could not persist hook event %s", ev["eventId"])


async def listen(stop: asyncio.Event) -> None:
    """PSUBSCRIBE hook.*.executed and record each event once per cluster until `stop` is set."""
    await triggers.run_pubsub(stop, _handle, patterns=[keys.HOOK_EVENT_PATTERN])


async def _handle(channel: str, body: str) -> None:
    try:
        env = orjson.loads(body)
        if isinstance(env, dict) and isinstance(env.get("id"), str):
            await record_hook_event(channel, env)
    except Exception:  # a bad message must not stop the listener
        log.exception("session processor failed on %s", channel)
