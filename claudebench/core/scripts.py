"""Lua loader and one typed async wrapper per lua/*.lua file (SPEC §7, STYLE §5).

Sources are read once at import. `_script()` returns a redis-py Script registered on the client
(EVALSHA, reloaded on NOSCRIPT), cached per client. `preload()` loads every file at start-up.
A system check (core/checks.py) keeps files and wrappers paired.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from claudebench.core import keys
from claudebench.core.errors import HandlerError

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
SOURCES: dict[str, str] = {path.stem: path.read_text() for path in sorted(LUA_DIR.glob("*.lua"))}


def _script(r: Redis, name: str) -> AsyncScript:
    cache: dict[str, AsyncScript] | None = getattr(r, "_cb_scripts", None)
    if cache is None:
        cache = {}
        r._cb_scripts = cache  # type: ignore[attr-defined]
    script = cache.get(name)
    if script is None:
        script = cache[name] = r.register_script(SOURCES[name])
    return script


async def preload(r: Redis) -> int:
    """SCRIPT LOAD every file so the first call of each is an EVALSHA hit."""
    for name, source in SOURCES.items():
        _script(r, name).sha = await r.script_load(source)
    return len(SOURCES)


class Retry(Exception):
    """A script saw state change between the caller's read and its own run; read again."""


def _check(reply: list[Any]) -> list[Any]:
    """Scripts answer {1, ...} on success, {0, 'retry'} or {0, message} otherwise."""
    if reply and reply[0] == 1:
        return reply
    message = reply[1] if len(reply) > 1 else "script failed"
    if message == "retry":
        raise Retry()
    raise HandlerError(message)


# --- event bus ------------------------------------------------------------------------------------
async def exactly_once_delivery(
    r: Redis, *, event_id: str, event_type: str, envelope: str, maxlen: int, stream_ttl_s: int,
    marker_ttl_s: int,
) -> tuple[bool, str | int]:
    """Deliver to stream and channel unless the id was seen. Returns (delivered, entry or count)."""
    reply = await _script(r, "exactly_once_delivery")(
        keys=[keys.processed_event(event_id), keys.DUPLICATES_PREVENTED, keys.stream(event_type)],
        args=[event_id, envelope, keys.channel(event_type), maxlen, stream_ttl_s, marker_ttl_s],
    )
    return reply[0] == 0, reply[1]


async def partition_event(r: Redis, *, partition_key: str, event_id: str, now_ms: int, envelope: str) -> int:
    reply = await _script(r, "partition_event")(
        keys=[keys.partition(partition_key)], args=[event_id, now_ms, envelope]
    )
    return int(reply[1])


# --- tasks ------------------------------------------------------------------------------------------
async def task_create(
    r: Redis, *, number: int, text: str, priority: int, created_at: str, metadata: str, now_ms: int,
) -> tuple[str | None, int]:
    """Create `t-<number>`. Returns (id, number) or (None, next number to try)."""
    task_id = f"t-{number}"
    reply = await _script(r, "task_create")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.TASK_ID_COUNTER, keys.METRICS_QUEUES],
        args=[number, task_id, text, priority, created_at, metadata, now_ms],
    )
    if reply[0] == 1:
        return reply[1], number
    return None, int(reply[2])


async def task_update(
    r: Redis, *, task_id: str, assignee: str, metadata_read: str, updates: str, now_iso: str,
) -> dict[str, str]:
    reply = _check(await _script(r, "task_update")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.instance_queue(assignee)],
        args=[task_id, assignee, metadata_read, updates, now_iso],
    ))
    flat = reply[1:]
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def task_assign(
    r: Redis, *, task_id: str, instance_id: str, now_iso: str, assigned_by: str,
) -> str:
    """Returns the previous assignee ('' when the task was unassigned)."""
    reply = _check(await _script(r, "task_assign")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.instance(instance_id),
              keys.instance_queue(instance_id), keys.task_assignment_history(task_id),
              keys.metrics_instance(instance_id)],
        args=[task_id, instance_id, now_iso, assigned_by],
    ))
    return reply[1]


async def task_unassign(r: Redis, *, task_id: str, assignee: str, now_iso: str, unassigned_by: str) -> str:
    reply = _check(await _script(r, "task_unassign")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.instance_queue(assignee),
              keys.task_assignment_history(task_id), keys.metrics_instance(assignee)],
        args=[task_id, assignee, now_iso, unassigned_by],
    ))
    return reply[1]


@dataclass(frozen=True)
class Completion:
    status: str
    duration_ms: int


async def task_complete(
    r: Redis, *, task_id: str, assignee: str, result: str, now_iso: str, now_ms: int, completed_by: str,
) -> Completion:
    reply = _check(await _script(r, "task_complete")(
        keys=[keys.task(task_id), keys.instance_queue(assignee), keys.metrics_instance(assignee),
              keys.METRICS_QUEUES, keys.task_completion_history(task_id)],
        args=[task_id, assignee, result, now_iso, now_ms, completed_by],
    ))
    return Completion(status=reply[1], duration_ms=int(reply[2]))


async def delete_task(
    r: Redis, *, task_id: str, assignee: str, attachment_keys: list[str], now_iso: str,
) -> str | None:
    """Returns the deleted task's status, or None when Redis has no such task."""
    reply = await _script(r, "delete_task")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.instance_queue(assignee),
              keys.METRICS_TASK_DELETE, keys.task_attachments(task_id),
              keys.task_assignment_history(task_id), keys.task_completion_history(task_id),
              *(keys.task_attachment(task_id, k) for k in attachment_keys)],
        args=[task_id, assignee, now_iso, len(attachment_keys)],
    )
    if reply[0] == 1:
        return reply[1]
    if reply[1] == "retry":
        raise Retry()
    return None


async def task_restore(
    r: Redis, *, task_id: str, status: str, assignee: str, priority: int, fields: dict[str, str],
) -> bool:
    digits = task_id[2:] if task_id.startswith("t-") and task_id[2:].isdigit() else "0"
    flat: list[str] = []
    for name, value in fields.items():
        flat += [name, value]
    reply = await _script(r, "task_restore")(
        keys=[keys.task(task_id), keys.PENDING_TASKS, keys.TASK_ID_COUNTER, keys.instance_queue(assignee)],
        args=[task_id, digits, status, assignee, priority, *flat],
    )
    return reply == 1


# --- system -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SystemHealth:
    status: str
    redis: bool
    postgres: bool
    mcp: bool
    healthy: int
    degraded: int
    total: int


async def get_system_health(
    r: Redis, *, instance_keys: list[str], now_ms: int, timeout_ms: int,
) -> SystemHealth:
    reply = await _script(r, "get_system_health")(
        keys=[keys.SERVICE_POSTGRES, keys.SERVICE_MCP, *instance_keys], args=[now_ms, timeout_ms],
    )
    status, redis_ok, pg_ok, mcp_ok, healthy, degraded, total = reply
    return SystemHealth(status, bool(redis_ok), bool(pg_ok), bool(mcp_ok), healthy, degraded, total)
