"""Instance and coordination functions shared by the system handlers and the gossip worker (STYLE §4).

Every Redis key comes from core/keys.py and every change goes through a Lua script; scans happen
here, in Python, and the keys they find are handed to the scripts (SPEC §7 general facts).
Services never publish events: handlers and the gossip loop do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from redis.asyncio import Redis

from claudebench.core import keys, pg, scripts
from claudebench.core.clock import dt_from_ms, iso_ms, now_ms
from claudebench.core.errors import HandlerError
from claudebench.core.scripts import Retry
from instances.models import Instance, InstanceStatus
from tasks import services as task_services

log = logging.getLogger("claudebench.instances")

RETRIES = 8

# SPEC §8.9: specialist type and extra capabilities by the first matching role.
_SPECIALISTS = (
    ("frontend", ("react", "typescript", "css")),
    ("backend", ("node", "express", "postgresql")),
    ("testing", ("jest", "cypress", "e2e")),
    ("docs", ("markdown", "docs")),
    ("general", ("general-purpose", "flexible")),
)
DEFAULT_MAX_CAPACITY = 5


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def specialist_of(roles: list[str]) -> tuple[str, list[str]]:
    """(specialist type, capabilities) derived from roles (SPEC §8.9, §16 row 37)."""
    for kind, extras in _SPECIALISTS:
        if kind in roles:
            return kind, [*roles, *(e for e in extras if e not in roles)]
    return "general", list(roles)


def roles_of(roles_json: str | None) -> list[str]:
    try:
        value = orjson.loads(roles_json or "[]")
    except orjson.JSONDecodeError:
        return []
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []


async def scan(r: Redis, pattern: str) -> list[str]:
    return [key async for key in r.scan_iter(match=pattern, count=500)]


async def instance_keys(r: Redis) -> list[str]:
    """`cb:instance:{id}` hashes (ids may not contain ':' — other keys share the prefix)."""
    return [k for k in await scan(r, keys.INSTANCE_PATTERN) if k.count(":") == 2]


async def task_keys(r: Redis) -> list[str]:
    return [k for k in await scan(r, keys.TASK_PATTERN) if keys.is_task_hash_key(k)]


# --- registration, heartbeat, unregistration ------------------------------------------------------
async def instance_register(
    r: Redis, *, instance_id: str, roles: list[str], metadata: dict[str, Any], kind: str = "client",
) -> scripts.Registration:
    """Register (or refresh) an instance in Redis; takes leadership when nobody holds it."""
    roles = list(dict.fromkeys(roles))  # one SADD per role, in the caller's order
    specialist, capabilities = specialist_of(roles)
    now = now_ms()
    return await scripts.instance_register(
        r, instance_id=instance_id, roles=roles, roles_json=_dumps(roles), specialist=specialist,
        now_ms=now, now_iso=iso_ms(now), ttl_s=settings.CB_INSTANCE_TTL_S, metadata=_dumps(metadata),
        leader_ttl_ms=settings.CB_LEADER_TTL_MS, kind=kind, capabilities=_dumps(capabilities),
        max_capacity=DEFAULT_MAX_CAPACITY,
    )


async def instance_heartbeat(r: Redis, *, instance_id: str, acquire: bool = True) -> scripts.Heartbeat | None:
    """Refresh a registered instance; None when it is not registered."""
    for _ in range(RETRIES):
        roles_json = await r.hget(keys.instance(instance_id), "roles")
        if roles_json is None:
            return None
        roles = roles_of(roles_json)
        now = now_ms()
        try:
            return await scripts.instance_heartbeat(
                r, instance_id=instance_id, roles=roles, roles_json=roles_json,
                specialist=specialist_of(roles)[0], now_ms=now, now_iso=iso_ms(now),
                ttl_s=settings.CB_INSTANCE_TTL_S, leader_ttl_ms=settings.CB_LEADER_TTL_MS, acquire=acquire,
                gossip_ttl_s=settings.CB_GOSSIP_TTL_S,
            )
        except Retry:
            continue
        except HandlerError:
            return None  # expired between our read and the script
    raise HandlerError(f"Instance {instance_id} kept changing; try again")


async def tasks_held_by(r: Redis, instance_id: str) -> list[str]:
    """Ids of tasks assigned to an instance: its queue plus any task hash naming it (SPEC §16 row 25)."""
    held = list(await r.lrange(keys.instance_queue(instance_id), 0, -1))
    found = await task_keys(r)
    if found:
        async with r.pipeline(transaction=False) as pipe:
            for key in found:
                pipe.hget(key, "assignedTo")
            owners = await pipe.execute()
        held += [key.split(":", 2)[2] for key, owner in zip(found, owners, strict=True) if owner == instance_id]
    return list(dict.fromkeys(held))


async def instance_unregister(r: Redis, *, instance_id: str, reason: str) -> scripts.Unregistration:
    """Remove an instance from every set and hand its unfinished tasks back to the pending queue."""
    for _ in range(RETRIES):
        roles_json = await r.hget(keys.instance(instance_id), "roles")
        roles = roles_of(roles_json)
        try:
            return await scripts.instance_unregister(
                r, instance_id=instance_id, roles=roles, roles_json=roles_json or "",
                specialist=specialist_of(roles)[0] if roles_json is not None else None,
                task_ids=await tasks_held_by(r, instance_id), now_iso=iso_ms(now_ms()), reason=reason,
            )
        except Retry:
            continue
    raise HandlerError(f"Instance {instance_id} kept changing; try again")


# --- PostgreSQL history ----------------------------------------------------------------------------
async def instance_save(
    *, instance_id: str, roles: list[str], status: str, metadata: dict[str, Any] | None = None,
    seen_ms: int | None = None,
) -> None:
    """Upsert the Instance row (SPEC §11.1: status is one of ACTIVE, IDLE, BUSY, OFFLINE)."""
    if status not in InstanceStatus.values:
        status = InstanceStatus.OFFLINE  # STOPPING and unknown states are not in the enum
    fields: dict[str, Any] = {
        "id": instance_id, "name": instance_id, "role": roles[0] if roles else "",
        "status": status, "last_heartbeat": dt_from_ms(seen_ms or now_ms()),
        "capabilities": specialist_of(roles)[1],
    }
    if metadata is not None:
        fields["metadata"] = metadata
    await pg.upsert(Instance, fields)


async def instance_save_quietly(**fields: Any) -> None:
    """Instance history is best effort: Redis already holds the truth (SPEC §11.3)."""
    try:
        await instance_save(**fields)
    except Exception:  # logged and swallowed on purpose: a history row must not fail a heartbeat
        log.exception("could not save instance %s to PostgreSQL", fields.get("instance_id"))


# --- failure handling and assignment ---------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    id: str
    last_seen: int | None
    status: str | None
    kind: str | None
    roles: list[str]


async def peers(r: Redis) -> list[Peer]:
    """Every registered instance with the fields failure detection needs."""
    found = await instance_keys(r)
    if not found:
        return []
    async with r.pipeline(transaction=False) as pipe:
        for key in found:
            pipe.hmget(key, "lastSeen", "status", "kind", "roles")
        rows = await pipe.execute()
    out = []
    for key, (seen, status, kind, roles) in zip(found, rows, strict=True):
        if seen is None and status is None:
            continue  # expired between SCAN and HMGET
        out.append(Peer(keys.instance_id_of(key), int(seen) if seen and seen.isdigit() else None,
                        status, kind, roles_of(roles)))
    return out


def is_stale(peer: Peer, now: int, timeout_ms: int) -> bool:
    return peer.last_seen is None or now - peer.last_seen > timeout_ms


async def orphaned_queues(r: Redis, live_ids: set[str]) -> list[str]:
    """Instances whose queue is non-empty but whose hash is gone (SPEC §8.7, the known hole)."""
    out = []
    for key in await scan(r, keys.INSTANCE_QUEUE_PATTERN):
        owner = keys.instance_id_of(key)
        if owner not in live_ids and await r.llen(key) > 0:
            out.append(owner)
    return out


async def reassign_failed(r: Redis, *, dead_id: str, fence: str, timeout_ms: int) -> list[str] | None:
    """Return a dead instance's tasks to the pending queue; PostgreSQL follows. None = it is alive.

    Raises scripts.NotLeader when fenced and leadership moved on.
    """
    for _ in range(RETRIES):
        queued = await r.lrange(keys.instance_queue(dead_id), 0, -1)
        now = now_ms()
        try:
            moved = await scripts.reassign_failed_tasks(
                r, dead_id=dead_id, task_ids=queued, fence=fence, now_ms=now, stale_ms=timeout_ms,
                now_iso=iso_ms(now),
            )
            break
        except Retry:
            continue
    else:
        raise HandlerError(f"Queue of {dead_id} kept changing; try again")
    for task_id in moved or []:
        await sync_task_quietly(r, task_id)
    return moved


async def sync_task_quietly(r: Redis, task_id: str) -> None:
    h = await task_services.task_hash(r, task_id)
    if not h:
        return
    try:
        await task_services.task_sync_from_hash(h)
    except Exception:  # the Redis move stands; PostgreSQL catches up on the next write (SPEC §11.3)
        log.exception("could not sync task %s to PostgreSQL", task_id)


async def place_on_worker(r: Redis, *, task_id: str, fence: str) -> tuple[str, int] | None:
    """Push a pending task to the least-loaded live worker (SPEC §8.8); PostgreSQL follows."""
    candidates = [p.id for p in await peers(r) if p.kind != "server" and "worker" in p.roles]
    if not candidates:
        return None
    now = now_ms()
    placed = await scripts.assign_task_with_load_balancing(
        r, task_id=task_id, candidates=candidates, fence=fence, now_ms=now, now_iso=iso_ms(now),
        stale_ms=settings.CB_HEARTBEAT_TIMEOUT_MS, default_capacity=settings.CB_TASK_MAX_PER_WORKER,
    )
    if placed:
        await sync_task_quietly(r, task_id)
    return placed


async def auto_assign(r: Redis, *, worker_id: str, candidates: int = 50) -> str | None:
    """Offer a worker the best pending task it may take (SPEC §7.14); PostgreSQL follows."""
    task_ids = await r.zrange(keys.PENDING_TASKS, 0, candidates - 1)
    if not task_ids:
        return None
    now = now_ms()
    task_id = await scripts.auto_assign_tasks(r, worker_id=worker_id, task_ids=task_ids, now_ms=now,
                                              now_iso=iso_ms(now))
    if task_id:
        await sync_task_quietly(r, task_id)
    return task_id


async def delayed_tasks(r: Redis, *, max_tasks: int = 50) -> list[str]:
    task_ids = await r.zrange(keys.PENDING_TASKS, 0, max_tasks * 2 - 1)
    if not task_ids:
        return []
    return await scripts.check_delayed_tasks(
        r, task_ids=task_ids, now_ms=now_ms(), delay_ms=settings.CB_TASK_AUTO_ASSIGN_DELAY_MS,
        max_tasks=max_tasks,
    )


# --- cluster summaries -----------------------------------------------------------------------------
async def average_latency(r: Redis) -> float:
    """Count-weighted mean of avgLatency over every cb:metrics:events:{event} hash."""
    found = [k for k in await scan(r, keys.METRICS_EVENTS_PATTERN) if k != keys.METRICS_LEGACY_EVENTS_TOTAL]
    if not found:
        return 0.0
    async with r.pipeline(transaction=False) as pipe:
        for key in found:
            pipe.hmget(key, "count", "avgLatency")
        rows = await pipe.execute()
    total = weighted = 0.0
    for count, avg in rows:
        try:
            c, a = float(count or 0), float(avg or 0)
        except ValueError:
            continue
        total += c
        weighted += c * a
    return weighted / total if total else 0.0


async def aggregate_metrics(r: Redis, *, fence: str) -> scripts.GlobalMetrics:
    live = [p.id for p in await peers(r)]
    return await scripts.aggregate_global_metrics(
        r, instance_ids=live, stream_keys=await scan(r, keys.STREAM_PATTERN),
        task_count=len(await task_keys(r)), avg_latency=await average_latency(r), fence=fence,
    )


async def sync_state(r: Redis, *, fence: str, synced_by: str, extra: dict[str, Any] | None = None) -> int:
    """Version a small summary: {instances, tasks, timestamp} plus the caller's record (SPEC §8.11)."""
    now = now_ms()
    state = {"instances": len(await instance_keys(r)), "tasks": len(await task_keys(r)), "timestamp": now,
             **(extra or {})}
    return await scripts.sync_global_state(r, state=_dumps(state), now_ms=now, fence=fence, synced_by=synced_by)
