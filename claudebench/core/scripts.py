"""Lua loader and one typed async wrapper per lua/*.lua file (SPEC §7, STYLE §5).

Sources are read once at import and hashed here (Redis names a script by the SHA-1 of its
source). Every call is an EVALSHA on the client's multiplexed connection (core/redis_mux.py), the
source loaded again when Redis answers NOSCRIPT. `preload()` loads every file at start-up. A
system check (core/checks.py) keeps files and wrappers paired.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from claudebench.core import keys, redis_mux
from claudebench.core.errors import HandlerError

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
SOURCES: dict[str, str] = {path.stem: path.read_text() for path in sorted(LUA_DIR.glob("*.lua"))}
SHAS: dict[str, str] = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SOURCES.items()}


async def evalsha(r: Redis, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run script `name` on the client's multiplexed connection (EVALSHA; loaded again and re-sent
    if Redis answers NOSCRIPT, which it does before running anything)."""
    return await evalsha_soon(r, name, keys, args)


def evalsha_soon(r: Redis, name: str, keys: Sequence[str], args: Sequence[Any]) -> Awaitable[Any]:
    """Queue script `name` now and return its reply to await later (redis_mux.submit): scripts
    queued one after another before the caller awaits go out in that order, in one write. A
    NOSCRIPT answer is handled when the reply is awaited: the source is loaded and the call sent
    again (so it then runs after whatever was queued behind it)."""
    mux = redis_mux.of(r)
    sent = mux.submit("EVALSHA", SHAS[name], len(keys), *keys, *args)
    return _reply_loading(mux, sent, name, keys, args)


async def _reply_loading(mux: redis_mux.Multiplexer, sent: Awaitable[Any], name: str, keys: Sequence[str],
                         args: Sequence[Any]) -> Any:
    try:
        return await sent
    except NoScriptError:
        await mux.execute("SCRIPT", "LOAD", SOURCES[name])
        return await mux.execute("EVALSHA", SHAS[name], len(keys), *keys, *args)


async def evalsha_many(r: Redis, name: str, argvs: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
    """Script `name` once per (keys, args), all in one pipelined round trip; one reply or exception
    (not raised) per call, in order. Calls Redis answered NOSCRIPT are sent again after a load."""
    mux = redis_mux.of(r)
    commands = [("EVALSHA", SHAS[name], len(k), *k, *a) for k, a in argvs]
    replies = await mux.execute_many(commands)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await mux.execute("SCRIPT", "LOAD", SOURCES[name])
        for i, reply in zip(missing, await mux.execute_many([commands[i] for i in missing]), strict=True):
            replies[i] = reply
    return replies


def _script(r: Redis, name: str) -> Callable[..., Awaitable[Any]]:
    """`await _script(r, name)(keys=[...], args=[...])`: one call of lua/<name>.lua (evalsha)."""
    return lambda keys=(), args=(): evalsha(r, name, keys, args)


async def preload(r: Redis) -> int:
    """SCRIPT LOAD every file so the first call of each is an EVALSHA hit."""
    for name, source in SOURCES.items():
        sha = await r.script_load(source)
        if sha != SHAS[name]:
            raise RuntimeError(f"Redis hashed lua/{name}.lua as {sha}, expected {SHAS[name]}")
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
def exactly_once_delivery_call(
    *, event_id: str, event_type: str, envelope: str, maxlen: int, stream_ttl_s: int, marker_ttl_s: int,
    gate: str | None = None,
) -> tuple[list[str], list[Any]]:
    """(keys, args) of one exactly_once_delivery call, for evalsha_many (the buffered publish) and
    the gated publish of a call whose admission is in the same round trip."""
    call_keys = [keys.processed_event(event_id), keys.DUPLICATES_PREVENTED, keys.stream(event_type)]
    if gate is not None:
        call_keys.append(gate)
    return call_keys, [event_id, envelope, keys.channel(event_type), maxlen, stream_ttl_s, marker_ttl_s]


def exactly_once_delivery_soon(r: Redis, *, gate: str, **call: Any) -> Awaitable[Any]:
    """Queue one delivery now that happens only if `gate` is set (see evalsha_soon); the reply is
    the script's: {0, entry}, {1, count} for a duplicate, {2, ''} when the gate was not set."""
    k, a = exactly_once_delivery_call(gate=gate, **call)
    return evalsha_soon(r, "exactly_once_delivery", k, a)


async def exactly_once_delivery(
    r: Redis, *, event_id: str, event_type: str, envelope: str, maxlen: int, stream_ttl_s: int,
    marker_ttl_s: int,
) -> tuple[bool, str | int]:
    """Deliver to stream and channel unless the id was seen. Returns (delivered, entry or count)."""
    k, a = exactly_once_delivery_call(event_id=event_id, event_type=event_type, envelope=envelope, maxlen=maxlen,
                                      stream_ttl_s=stream_ttl_s, marker_ttl_s=marker_ttl_s)
    reply = await _script(r, "exactly_once_delivery")(keys=k, args=a)
    return reply[0] == 0, reply[1]


def partition_event_call(*, partition_key: str, event_id: str, now_ms: int, envelope: str) -> tuple[list[str], list[Any]]:
    return [keys.partition(partition_key)], [event_id, now_ms, envelope]


async def partition_event(r: Redis, *, partition_key: str, event_id: str, now_ms: int, envelope: str) -> int:
    k, a = partition_event_call(partition_key=partition_key, event_id=event_id, now_ms=now_ms, envelope=envelope)
    reply = await _script(r, "partition_event")(keys=k, args=a)
    return int(reply[1])


# --- tasks ------------------------------------------------------------------------------------------
# Ids one task_create call may choose from (lua/task_create.lua): enough for the creates other
# processes make while a call is on its way; a retry brings more.
ID_CANDIDATES = 32
ID_CANDIDATES_RETRY = 128
_EXACT_IN_LUA = 2**53  # lua/task_create.lua computes candidate ids in doubles: exact below this


@dataclass(frozen=True)
class EventTemplate:
    """An event a script publishes itself, its envelope split around the value the script fills in
    (core/bus.template)."""

    event_id: str
    event_type: str
    before: str
    after: str


async def task_create(
    r: Redis, *, number: int, text: str, priority: int, created_at: str, metadata: str, now_ms: int,
    event: EventTemplate, stream_maxlen: int, stream_ttl_s: int, marker_ttl_s: int,
    candidates: int = ID_CANDIDATES,
) -> tuple[str | None, int]:
    """Create the task as `t-<n>`, n the first of number .. number+candidates-1 above the last id
    handed out, and publish `event` with its id. Returns (id, n) or (None, next number to try)."""
    if number + candidates > _EXACT_IN_LUA:
        raise HandlerError("Task id space exhausted")  # the script does arithmetic on doubles
    reply = await evalsha(
        r, "task_create",
        [keys.PENDING_TASKS, keys.TASK_ID_COUNTER, keys.METRICS_QUEUES, keys.processed_event(event.event_id),
         keys.stream(event.event_type), *(keys.task(f"t-{n}") for n in range(number, number + candidates))],
        [text, priority, created_at, metadata, now_ms, event.before, event.after, keys.channel(event.event_type),
         stream_maxlen, stream_ttl_s, marker_ttl_s, number],
    )
    if reply[0] == 1:
        return reply[1], int(reply[1][2:])
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


# --- instances and coordination (SPEC §7.2–7.8, 7.13–7.19; instances issue) ------------------------
def _str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Registration:
    became_leader: bool
    is_leader: bool


async def instance_register(
    r: Redis, *, instance_id: str, roles: list[str], roles_json: str, specialist: str, now_ms: int,
    now_iso: str, ttl_s: int, metadata: str, leader_ttl_ms: int, kind: str, capabilities: str,
    max_capacity: int,
) -> Registration:
    reply = _check(await _script(r, "instance_register")(
        keys=[keys.instance(instance_id), keys.INSTANCES_ACTIVE, keys.capabilities(instance_id),
              keys.LEADER_CURRENT, keys.LEADER_LOCK, *(keys.role(x) for x in roles),
              keys.specialists(specialist)],
        args=[instance_id, roles_json, now_ms, ttl_s, metadata, leader_ttl_ms, kind, capabilities,
              max_capacity, now_iso],
    ))
    return Registration(became_leader=reply[1] == 1, is_leader=reply[2] == 1)


@dataclass(frozen=True)
class Heartbeat:
    is_leader: bool
    previous_status: str


async def instance_heartbeat(
    r: Redis, *, instance_id: str, roles: list[str], roles_json: str, specialist: str | None,
    now_ms: int, now_iso: str, ttl_s: int, leader_ttl_ms: int, acquire: bool, gossip_ttl_s: int,
) -> Heartbeat:
    """Raises Retry when the roles changed since the caller read them, HandlerError when unknown."""
    sets = [keys.role(x) for x in roles] + ([keys.specialists(specialist)] if specialist else [])
    reply = _check(await _script(r, "instance_heartbeat")(
        keys=[keys.instance(instance_id), keys.GOSSIP_HEALTH, keys.INSTANCES_ACTIVE,
              keys.capabilities(instance_id), keys.LEADER_CURRENT, keys.LEADER_LOCK, *sets],
        args=[instance_id, now_ms, ttl_s, now_iso, leader_ttl_ms, roles_json, int(acquire), gossip_ttl_s],
    ))
    return Heartbeat(is_leader=reply[1] == 1, previous_status=_str(reply[2]) if len(reply) > 2 else "")


@dataclass(frozen=True)
class Gossip:
    partition: bool
    healthy: int
    total: int
    marked_offline: bool


async def gossip_health_update(
    r: Redis, *, instance_id: str, status: str, last_seen_ms: int, now_ms: int, stale_ms: int,
    drop_ms: int, ttl_s: int, mark_instance: bool = False,
) -> Gossip:
    """Record one entry ('' = recompute only); mark_instance also marks a stale instance OFFLINE."""
    extra = [keys.instance(instance_id)] if mark_instance and instance_id else []
    reply = await _script(r, "gossip_health_update")(
        keys=[keys.GOSSIP_HEALTH, keys.PARTITION_DETECTED, keys.PARTITION_RECOVERY, *extra],
        args=[instance_id, status, last_seen_ms, now_ms, stale_ms, drop_ms, ttl_s],
    )
    return Gossip(partition=reply[1] == 1, healthy=int(reply[2]), total=int(reply[3]),
                  marked_offline=reply[4] == 1)


@dataclass(frozen=True)
class Leadership:
    is_leader: bool
    became: bool
    holder: str


async def leader_elect(r: Redis, *, me: str, ttl_ms: int, holder_read: str) -> Leadership:
    """Raises Retry when the holder changed since the caller read it."""
    reply = _check(await _script(r, "leader_elect")(
        keys=[keys.LEADER_CURRENT, keys.LEADER_LOCK, keys.instance(holder_read or me)],
        args=[me, ttl_ms, holder_read],
    ))
    return Leadership(is_leader=reply[1] == 1, became=reply[2] == 1, holder=_str(reply[3]))


async def leader_release(r: Redis, *, me: str) -> bool:
    reply = await _script(r, "leader_release")(keys=[keys.LEADER_CURRENT, keys.LEADER_LOCK], args=[me])
    return reply[1] == 1


@dataclass(frozen=True)
class Unregistration:
    existed: bool
    requeued: list[str]


async def instance_unregister(
    r: Redis, *, instance_id: str, roles: list[str], roles_json: str, specialist: str | None,
    task_ids: list[str], now_iso: str, reason: str,
) -> Unregistration:
    """Raises Retry when the roles changed since the caller read them."""
    sets = [keys.role(x) for x in roles] + ([keys.specialists(specialist)] if specialist else [])
    reply = _check(await _script(r, "instance_unregister")(
        keys=[keys.instance(instance_id), keys.INSTANCES_ACTIVE, keys.capabilities(instance_id),
              keys.GOSSIP_HEALTH, keys.instance_queue(instance_id), keys.PENDING_TASKS,
              keys.LEADER_CURRENT, keys.LEADER_LOCK, *sets, *(keys.task(t) for t in task_ids)],
        args=[instance_id, roles_json, now_iso, len(sets), reason],
    ))
    return Unregistration(existed=reply[1] == 1, requeued=[_str(x) for x in reply[3:]])


class NotLeader(Exception):
    """A fenced script found that the caller no longer holds leadership; it changed nothing."""


def _fenced(reply: list[Any]) -> list[Any]:
    if reply and reply[0] == 0 and len(reply) > 1 and reply[1] == "not leader":
        raise NotLeader()
    return reply


async def reassign_failed_tasks(
    r: Redis, *, dead_id: str, task_ids: list[str], fence: str, now_ms: int, stale_ms: int, now_iso: str,
) -> list[str] | None:
    """Moved task ids; None when the instance turned out alive. Raises Retry, NotLeader."""
    reply = _fenced(await _script(r, "reassign_failed_tasks")(
        keys=[keys.LEADER_CURRENT, keys.instance(dead_id), keys.instance_queue(dead_id), keys.PENDING_TASKS,
              keys.redistributed_from(dead_id), *(keys.task(t) for t in task_ids)],
        args=[dead_id, fence, now_ms, stale_ms, now_iso, *task_ids],
    ))
    if reply[0] == 0 and reply[1] == "alive":
        return None
    return [_str(x) for x in _check(reply)[2:]]


async def assign_task_with_load_balancing(
    r: Redis, *, task_id: str, candidates: list[str], fence: str, now_ms: int, now_iso: str,
    stale_ms: int, default_capacity: int,
) -> tuple[str, int] | None:
    """(instance id, new queue depth), or None when no eligible worker has room. Raises NotLeader."""
    per = []
    for c in candidates:
        per += [keys.instance(c), keys.instance_queue(c), keys.capacity(c)]
    reply = _fenced(await _script(r, "assign_task_with_load_balancing")(
        keys=[keys.LEADER_CURRENT, keys.PENDING_TASKS, keys.HISTORY_ASSIGNMENTS, keys.task(task_id), *per],
        args=[task_id, fence, now_ms, now_iso, stale_ms, default_capacity],
    ))
    if reply[0] != 1:
        return None
    return _str(reply[1]), int(reply[2])


async def check_delayed_tasks(
    r: Redis, *, task_ids: list[str], now_ms: int, delay_ms: int, max_tasks: int,
) -> list[str]:
    reply = await _script(r, "check_delayed_tasks")(
        keys=[keys.PENDING_TASKS, *(keys.task(t) for t in task_ids)], args=[now_ms, delay_ms, max_tasks],
    )
    return [_str(x) for x in reply]


async def auto_assign_tasks(
    r: Redis, *, worker_id: str, task_ids: list[str], now_ms: int, now_iso: str,
) -> str | None:
    """The task id handed to the worker, or None."""
    reply = await _script(r, "auto_assign_tasks")(
        keys=[keys.PENDING_TASKS, keys.instance(worker_id), keys.instance_queue(worker_id),
              keys.METRICS_QUEUES, keys.HISTORY_ASSIGNMENTS, *(keys.task(t) for t in task_ids)],
        args=[worker_id, now_ms, now_iso],
    )
    return _str(reply[1]) if reply[0] == 1 else None


@dataclass(frozen=True)
class GlobalMetrics:
    total_events: int
    total_tasks: int
    avg_latency: float
    throughput: float
    instance_count: int
    load_balance: float
    total_load: int


async def aggregate_global_metrics(
    r: Redis, *, instance_ids: list[str], stream_keys: list[str], task_count: int, avg_latency: float,
    fence: str,
) -> GlobalMetrics:
    """Raises NotLeader when fenced and no longer the leader."""
    reply = _fenced(await _script(r, "aggregate_global_metrics")(
        keys=[keys.LEADER_CURRENT, keys.METRICS_GLOBAL, keys.METRICS_SCALING,
              *(keys.instance_queue(i) for i in instance_ids), *stream_keys],
        args=[fence, len(instance_ids), task_count, f"{avg_latency:.2f}"],
    ))
    return GlobalMetrics(int(reply[1]), int(reply[2]), float(reply[3]), float(reply[4]), int(reply[5]),
                         float(reply[6]), int(reply[7]))


async def sync_global_state(r: Redis, *, state: str, now_ms: int, fence: str, synced_by: str) -> int:
    """New version number. Raises NotLeader when fenced and no longer the leader."""
    reply = _fenced(await _script(r, "sync_global_state")(
        keys=[keys.LEADER_CURRENT, keys.STATE_GLOBAL], args=[fence, state, now_ms, synced_by],
    ))
    return int(reply[1])


async def get_system_state(
    r: Redis, *, instance_keys: list[str], task_keys: list[str], stream_keys: list[str], per_stream: int,
) -> tuple[str, str, str]:
    reply = await _script(r, "get_system_state")(
        keys=[*instance_keys, *task_keys, *stream_keys],
        args=[len(instance_keys), len(task_keys), per_stream],
    )
    return reply[0], reply[1], reply[2]


@dataclass(frozen=True)
class Vote:
    reached: bool
    winner: str
    counted: int
    newly_decided: bool


async def quorum_vote(
    r: Redis, *, decision: str, voter: str, value: str, total: int, now_ms: int, voters_after: list[str],
    ttl_s: int,
) -> Vote:
    """voters_after: every voter id once this vote is in, sorted. Raises Retry if that set moved."""
    reply = _check(await _script(r, "quorum_vote")(
        keys=[keys.quorum_decision(decision), keys.QUORUM_LATEST, *(keys.instance(v) for v in voters_after)],
        args=[decision, voter, value, total, now_ms, "\n".join(voters_after), ttl_s],
    ))
    return Vote(reached=reply[1] == 1, winner=_str(reply[2]), counted=int(reply[3]), newly_decided=reply[4] == 1)


async def coordinate_batch(
    r: Redis, *, processor: str, batch_id: str, total: int, lock_ttl_s: int, progress_ttl_s: int,
) -> tuple[bool, str, int]:
    """(holds the lock, holder, processed so far)."""
    reply = await _script(r, "coordinate_batch")(
        keys=[keys.batch_lock(batch_id), keys.batch_progress(batch_id), keys.BATCH_LOCK, keys.BATCH_PROGRESS,
              keys.BATCH_CURRENT],
        args=[processor, batch_id, total, lock_ttl_s, progress_ttl_s],
    )
    return reply[0] == 1, _str(reply[1]), int(reply[2])


async def batch_progress(
    r: Redis, *, processor: str, batch_id: str, processed: int, lock_ttl_s: int, progress_ttl_s: int,
) -> int:
    """Raises HandlerError('Batch lock lost') when the caller no longer holds the lock."""
    reply = _check(await _script(r, "batch_progress")(
        keys=[keys.batch_lock(batch_id), keys.batch_progress(batch_id), keys.BATCH_PROGRESS, keys.BATCH_CURRENT],
        args=[processor, processed, batch_id, lock_ttl_s, progress_ttl_s],
    ))
    return int(reply[1])


async def batch_release(r: Redis, *, processor: str, batch_id: str) -> bool:
    reply = await _script(r, "batch_release")(
        keys=[keys.batch_lock(batch_id), keys.BATCH_LOCK, keys.BATCH_CURRENT], args=[processor, batch_id],
    )
    return reply[1] == 1


# --- hooks and sessions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HookEventRecord:
    entry_id: str
    event_count: int
    needs_snapshot: bool


async def process_hook_event(
    r: Redis, *, event_id: str, event_type: str, session_id: str, instance_id: str, now_ms: int,
    params: str, result: str, labels: str,
) -> HookEventRecord:
    reply = _check(await _script(r, "process_hook_event")(
        keys=[keys.session_stream(session_id), keys.session_state(session_id), keys.session_context(session_id),
              keys.session_tools(session_id), keys.metrics_session(session_id)],
        args=[event_id, event_type, session_id, instance_id, now_ms, params, result, labels],
    ))
    return HookEventRecord(entry_id=reply[1], event_count=int(reply[2]), needs_snapshot=reply[3] == 1)


def _as_list(value: Any) -> list[Any]:
    # SPEC §7.25: cjson encodes an empty table as {}, which must read back as [].
    return value if isinstance(value, list) else []


async def build_session_context(
    r: Redis, *, session_id: str, task_ids: list[str], limit: int = 100,
) -> dict[str, Any]:
    """{lastTasks, lastTools, lastPrompt?, activeTodos, eventCounts, instanceId?} of a session."""
    import orjson

    reply = await _script(r, "build_session_context")(
        keys=[keys.session_stream(session_id), keys.session_context(session_id), keys.session_tools(session_id),
              *(keys.task(t) for t in task_ids[:5])],
        args=[session_id, limit],
    )
    ctx = orjson.loads(reply)
    for name in ("lastTasks", "lastTools", "activeTodos"):
        ctx[name] = _as_list(ctx.get(name))
    if not isinstance(ctx.get("eventCounts"), dict):
        ctx["eventCounts"] = {}
    return ctx


async def create_session_snapshot(
    r: Redis, *, session_id: str, snapshot_id: str, reason: str, now_ms: int, context: str = "",
) -> int | None:
    """Returns the number of events snapshotted, or None when the session has no events."""
    reply = await _script(r, "create_session_snapshot")(
        keys=[keys.session_stream(session_id), keys.snapshot(session_id, snapshot_id),
              keys.session_state(session_id)],
        args=[session_id, snapshot_id, reason, now_ms, context],
    )
    return int(reply[2]) if reply[0] == 1 else None


async def update_session_metrics(r: Redis, *, session_id: str, hook_type: str, now_ms: int) -> tuple[int, int]:
    reply = _check(await _script(r, "update_session_metrics")(
        keys=[keys.metrics_session(session_id), keys.METRICS_GLOBAL_HOOKS], args=[session_id, hook_type, now_ms],
    ))
    return int(reply[1]), int(reply[2])


async def todo_state_update(r: Redis, *, instance_id: str, todos: str, now_iso: str) -> str:
    """Store an instance's new todo list; returns the previous one (JSON, '[]' when none)."""
    reply = _check(await _script(r, "todo_state_update")(
        keys=[keys.todos_current(instance_id), keys.todos_history(instance_id), keys.todos_instance(instance_id)],
        args=[todos, now_iso],
    ))
    return reply[1]


# --- pipeline (SPEC §3.2–3.12) ------------------------------------------------------------------------
@dataclass(frozen=True)
class Admission:
    """What pipeline_admit decided: `verdict` is hit | ok | limited | open | half_full.

    `detail` is the cached wire JSON for a hit, the breaker mode (closed | half) for ok, the
    window count for limited. `tag` is the cache generation tag an ok call stores its answer with.
    """

    verdict: str
    detail: str = ""
    tag: str = ""


@functools.cache
def _admit_keys(event: str) -> tuple[str, tuple[str, ...]]:
    """The keys of one handler's admission that never change (handler names are a fixed set)."""
    return keys.stream(event), tuple(keys.circuit(event, part) for part in ("state", "trips", "allowed", "rejected"))


def pipeline_admit_soon(
    r: Redis, *, event: str, actor: str, envelope: str, stream_maxlen: int, stream_ttl_s: int,
    rate: int, window_ms: int, member: str, breaker: bool, half_open_trials: int,
    half_open_window_ms: int, cache_digest: str | None, cache_scopes: tuple[str, ...], now_iso: str,
    audit_metadata: str, audit_maxlen: int, audit_ttl_s: int, gate: str | None = None, gate_ttl_ms: int = 0,
) -> Awaitable[Admission]:
    """Queue the admission now (see evalsha_soon); await the result for the verdict. With `gate`,
    a call let through sets that key for `gate_ttl_ms`."""
    stream, circuit = _admit_keys(event)
    reply = evalsha_soon(
        r, "pipeline_admit",
        [stream, keys.ratelimit(event, actor), *circuit,
         keys.METRICS_COUNTERS, keys.AUDIT_GENERAL, keys.cache_entry(event, cache_digest or "-"),
         keys.METRICS_CACHE_HANDLER, gate or keys.gate("-"), *(keys.cache_version(s) for s in cache_scopes)],
        [event, envelope, stream_maxlen, stream_ttl_s, rate, window_ms, member, int(breaker),
         half_open_trials, half_open_window_ms, int(cache_digest is not None), actor, now_iso,
         audit_metadata, audit_maxlen, audit_ttl_s, int(gate is not None), gate_ttl_ms],
    )
    return _admission(reply)


async def _admission(reply: Awaitable[Any]) -> Admission:
    got = await reply
    return Admission(str(got[0]), str(got[1]) if len(got) > 1 else "", str(got[2]) if len(got) > 2 else "")


async def pipeline_admit(r: Redis, **kwargs: Any) -> Admission:
    """The admission of one call (keyword arguments of pipeline_admit_soon)."""
    return await pipeline_admit_soon(r, **kwargs)


def gated_writes(r: Redis, gate: str, commands: Sequence[Sequence[Any]]) -> Awaitable[bool]:
    """Queue `commands` (each: name, key, further arguments) to run only if `gate` is set (see
    lua/gated_writes.lua); the result says whether they ran."""
    call_keys: list[str] = [gate]
    index: dict[str, int] = {}
    args: list[Any] = [len(commands)]
    for name, key, *rest in commands:
        if key not in index:
            call_keys.append(key)
            index[key] = len(call_keys)
        args += [name, index[key], len(rest), *rest]
    return _truthy(evalsha_soon(r, "gated_writes", call_keys, args))


async def _truthy(reply: Awaitable[Any]) -> bool:
    return bool(await reply)


_DOMAIN_METRICS = {"hook": keys.METRICS_VALIDATION_CACHE, "task": keys.METRICS_QUEUES,
                   "health": keys.METRICS_SYSTEM_HEALTH, "scaling": keys.METRICS_SCALING}


@functools.cache
def _outcome_keys(event: str) -> tuple[str, ...]:
    """KEYS[1..19] of lua/pipeline_outcome.lua for one handler: a fixed set, built once."""
    circuit = [keys.circuit(event, part) for part in
               ("state", "trips", "allowed", "failures", "successes", "lastFailure", "openedAt",
                "failures:timeout", "failures:error")]
    return (*circuit, keys.METRICS_COUNTERS, keys.METRICS_CIRCUIT_ALL, keys.ALERTS_CIRCUIT_OPENED,
            keys.metrics_events(event), keys.METRICS_CURRENT, keys.METRICS_GLOBAL, keys.AUDIT_GENERAL,
            keys.AUDIT_HOOK_DECISIONS, keys.audit_tool_stream(event.removeprefix("hook.")),
            keys.METRICS_CACHE_GLOBAL)


# What one run of the outcome script shares: outcomes that agree on these go in one call.
_OUTCOME_SHARED = ("event", "breaker", "threshold", "open_ms", "max_open_ms", "close_after", "audit_maxlen",
                   "audit_ttl_s", "domain", "domain_metrics", "timeout_on")
# Calls per script run: enough to fold a burst's counters together, few enough that one run
# never holds Redis long (every call still writes its own audit entries).
OUTCOME_RUN_MAX = 64


def _outcome_runs(outcomes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive outcomes sharing _OUTCOME_SHARED, in order, at most OUTCOME_RUN_MAX each."""
    runs: list[list[dict[str, Any]]] = []
    last: tuple[Any, ...] | None = None
    for o in outcomes:
        shared = tuple(o[name] for name in _OUTCOME_SHARED)
        if shared != last or len(runs[-1]) >= OUTCOME_RUN_MAX:
            runs.append([])
            last = shared
        runs[-1].append(o)
    return runs


def _pipeline_outcome_argv(run: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of lua/pipeline_outcome.lua for a run of outcomes of one handler; each
    outcome holds the keyword fields listed in `pipeline_outcome_batch`."""
    first = run[0]
    event = first["event"]
    domain_key = _DOMAIN_METRICS.get(first["domain_metrics"], keys.METRICS_GLOBAL)
    run_keys = [*_outcome_keys(event), domain_key]
    args: list[Any] = [event, int(first["breaker"]), first["threshold"], first["open_ms"], first["max_open_ms"],
                       first["close_after"], first["audit_maxlen"], first["audit_ttl_s"], first["domain"],
                       first["domain_metrics"], int(first["timeout_on"]), len(run)]
    for o in run:
        digest = o["cache_digest"]
        entry_index = 0
        if digest is not None and o["cache_ttl_s"] > 0 and o["cache_entry"]:
            run_keys.append(keys.cache_entry(event, digest))
            entry_index = len(run_keys)
        decision, decision_reason, params = o["hook_decision"] or ("", "", "")
        args += [int(o["ok"]), o["failure_type"], f"{o['duration_ms']:.3f}", o["actor"], o["now_iso"], o["reason"],
                 o["audit_metadata"], o["cache_ttl_s"] if digest is not None else 0, entry_index, o["cache_entry"],
                 int(o["hook_decision"] is not None), decision, decision_reason, params]
    return run_keys, args


async def pipeline_outcome(r: Redis, **outcome: Any) -> str:
    """One call's outcome (the keyword fields of `pipeline_outcome_batch`). Returns the breaker
    transition it caused: 'opened', 'closed' or ''."""
    return (await pipeline_outcome_batch(r, [outcome]))[0]


async def pipeline_outcome_batch(r: Redis, outcomes: list[dict[str, Any]]) -> list[str]:
    """Many calls' outcomes in order, in one pipelined round trip: one script run per stretch of
    consecutive calls of one handler. Each outcome has: event, ok, failure_type, duration_ms,
    breaker, threshold, open_ms, max_open_ms, close_after, actor, now_iso, reason,
    audit_metadata, audit_maxlen, audit_ttl_s, cache_digest, cache_ttl_s, cache_entry,
    hook_decision ((decision, reason, params JSON) or None), domain, domain_metrics, timeout_on.
    Returns one transition per outcome; raises the first error after all ran."""
    runs = _outcome_runs(outcomes)
    replies = await evalsha_many(r, "pipeline_outcome", [_pipeline_outcome_argv(run) for run in runs])
    errors = [reply for reply in replies if isinstance(reply, Exception)]
    if errors:
        raise errors[0]
    transitions: list[str] = []
    for run, reply in zip(runs, replies, strict=True):
        transitions += [str(t) for t in reply] if reply else [""] * len(run)
    return transitions
