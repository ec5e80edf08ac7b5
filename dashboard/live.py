"""What the operator sees live, read from Redis (SPEC §6): instances, queues, leader, metrics.

Read-only: every key comes from core/keys.py and each function is one or two pipelined round
trips. Sync callers (DRF views, admin) run these through `run()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from asgiref.sync import async_to_sync
from django.conf import settings

from claudebench.core import keys, pg
from claudebench.core.clock import now_ms
from claudebench.core.redis import get_redis
from instances import services as instance_services

T = TypeVar("T")


def run(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run an async reader from sync code (under ASGI it runs on the server's own loop)."""

    async def _go() -> T:
        return await fn(get_redis(), *args, **kwargs)

    return async_to_sync(_go)()


def _json(value: str | None, default: Any) -> Any:
    try:
        return orjson.loads(value) if value else default
    except orjson.JSONDecodeError:
        return default


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


async def instances(r) -> list[dict[str, Any]]:
    """Registered instances with heartbeat age and load, leader first then by id."""
    found = await instance_services.instance_keys(r)
    async with r.pipeline(transaction=False) as pipe:
        pipe.get(keys.LEADER_CURRENT)
        for key in found:
            ident = keys.instance_id_of(key)
            pipe.hgetall(key)
            pipe.llen(keys.instance_queue(ident))
            pipe.hgetall(keys.metrics_instance(ident))
        replies = await pipe.execute(raise_on_error=False)
    leader, now, timeout = replies[0], now_ms(), settings.CB_HEARTBEAT_TIMEOUT_MS
    out = []
    for i, key in enumerate(found):
        h, queue, metrics = replies[1 + 3 * i: 4 + 3 * i]
        if not isinstance(h, dict) or not h:
            continue  # expired between SCAN and HGETALL
        ident = keys.instance_id_of(key)
        seen = _int(h.get("lastSeen")) or None
        age = now - seen if seen else None
        metrics = metrics if isinstance(metrics, dict) else {}
        out.append({
            "id": ident,
            "roles": _json(h.get("roles"), []),
            "status": h.get("status", ""),
            "health": "healthy" if age is not None and age <= timeout else "stale",
            "lastSeen": seen,
            "heartbeatAgeMs": age,
            "leader": ident == leader,
            "metadata": _json(h.get("metadata"), {}),
            "load": {
                "queueLength": queue if isinstance(queue, int) else 0,
                "assignedTasks": _int(metrics.get("assignedTasks")),
                "tasksCompleted": _int(metrics.get("tasksCompleted")),
                "tasksFailed": _int(metrics.get("tasksFailed")),
            },
        })
    out.sort(key=lambda x: (not x["leader"], x["id"]))
    return out


async def overview(r) -> dict[str, Any]:
    """Health, queue depths, leader, partition flag and the counters the charts difference."""
    async with r.pipeline(transaction=False) as pipe:
        pipe.ping()
        pipe.zcard(keys.PENDING_TASKS)
        pipe.get(keys.LEADER_CURRENT)
        pipe.exists(keys.PARTITION_DETECTED)
        pipe.exists(keys.PARTITION_RECOVERY)
        pipe.hgetall(keys.METRICS_QUEUES)
        pipe.hgetall(keys.METRICS_GLOBAL)
        pipe.get(keys.SERVICE_POSTGRES)
        replies = await pipe.execute(raise_on_error=False)
    ping, pending, leader, partition, recovery, queues, global_, postgres = replies
    live = await instances(r)
    pg_ok = postgres == "ok" or await pg.ping(timeout_s=1.0)  # the key is refreshed every 5 min only
    queue_depths = {"pending": pending if isinstance(pending, int) else 0}
    for inst in live:
        queue_depths[inst["id"]] = inst["load"]["queueLength"]
    successes = failures = 0
    for field, value in (global_ if isinstance(global_, dict) else {}).items():
        if field.endswith(":success"):
            successes += _int(value)
        elif field.endswith(":failure"):
            failures += _int(value)
    healthy = sum(1 for i in live if i["health"] == "healthy")
    return {
        "timestamp": now_ms(),
        "health": {"redis": ping is True, "postgres": pg_ok,
                   "status": "healthy" if ping is True and pg_ok and (healthy or not live) else "degraded"},
        "instances": live,
        "instanceCount": len(live),
        "healthyInstances": healthy,
        "leader": leader if isinstance(leader, str) else None,
        "partition": {"detected": partition == 1, "recovering": recovery == 1},
        "queues": queue_depths,
        "queueMetrics": {k: _int(v) for k, v in (queues if isinstance(queues, dict) else {}).items()
                         if k in ("totalTasks", "tasksCreated", "tasksCompleted", "tasksAssigned")},
        "calls": {"success": successes, "failure": failures},
    }
