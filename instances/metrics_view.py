"""system.metrics: read the counters the pipeline and the scripts write (SPEC §3.9, §3.12, §5.3.3).

Only keys are read here (core/keys.py), never the writers' Python code, so this keeps working
whatever layer fills them. Zero values are left out, as in the original.
"""

from __future__ import annotations

import os
import resource
from typing import Any

from redis.asyncio import Redis

from claudebench.core import keys
from instances import services


def memory_mb() -> float:
    """Resident memory of this process in MB, 2 decimals (SPEC §18.2: always present)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024, 2)
    except (OSError, ValueError, IndexError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 2)


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else round(number, 2)


def _numbers(h: dict[str, str] | None, names: dict[str, str] | None = None) -> dict[str, float]:
    """Non-zero numeric fields of a hash, optionally renamed (and limited to) `names`."""
    out = {}
    for field, value in (h or {}).items():
        name = field if names is None else names.get(field)
        number = _num(value)
        if name and number:
            out[name] = number
    return out


async def _read(r: Redis, calls: list[tuple[str, str]]) -> list[Any]:
    """Run HGETALL/GET per (command, key); a key of the wrong type reads as nothing."""
    async with r.pipeline(transaction=False) as pipe:
        for command, key in calls:
            getattr(pipe, command)(key)
        replies = await pipe.execute(raise_on_error=False)
    return [None if isinstance(x, Exception) else x for x in replies]


async def collect(r: Redis, *, detailed: bool) -> dict[str, Any]:
    names = [k for k in await services.scan(r, keys.METRICS_EVENTS_PATTERN) if k != keys.METRICS_LEGACY_EVENTS_TOTAL]
    events = [k.removeprefix("cb:metrics:events:") for k in names]
    base = [("hgetall", keys.METRICS_CURRENT), ("hgetall", keys.METRICS_QUEUES), ("hgetall", keys.METRICS_COUNTERS),
            ("get", keys.METRICS_LEGACY_EVENTS_TOTAL), ("get", keys.METRICS_LEGACY_TASKS_COMPLETED)]
    current, queues, counters, legacy_events, legacy_done = await _read(r, base)
    per_event = await _read(r, [("hgetall", k) for k in names])
    counts = {e: (_num((h or {}).get("count")) or 0, _num((h or {}).get("avgLatency")) or 0)
              for e, h in zip(events, per_event, strict=True)}
    total_calls = sum(c for c, _ in counts.values())
    weighted = sum(c * a for c, a in counts.values())
    current, queues, counters = current or {}, queues or {}, counters or {}
    out: dict[str, Any] = {
        "eventsProcessed": _first(legacy_events, current.get("events:total"),
                                  counters.get("circuit:system.get_state:success"), total_calls),
        "tasksCompleted": _first(legacy_done, queues.get("tasksCompleted"), queues.get("completedTasks"),
                                 current.get("tasks:completed")),
        "averageLatency": round(weighted / total_calls, 2) if total_calls else None,
        "memoryUsage": memory_mb(),
    }
    out = {k: v for k, v in out.items() if v}
    out.setdefault("memoryUsage", memory_mb())
    if detailed:
        out.update(await _detailed(r, events, per_event, current, queues, counters))
    return out


def _first(*values: Any) -> float | None:
    for value in values:
        number = _num(value)
        if number:
            return number
    return None


async def _detailed(r: Redis, events: list[str], per_event: list[Any], current: dict, queues: dict,
                    counters: dict) -> dict[str, Any]:
    extra = [("hgetall", keys.METRICS_CIRCUIT_ALL), ("hgetall", keys.METRICS_CACHE_GLOBAL),
             ("hgetall", keys.METRICS_CACHE_HANDLER), ("hgetall", keys.METRICS_GLOBAL),
             ("hgetall", keys.METRICS_SCALING), ("hgetall", keys.METRICS_SYSTEM_HEALTH),
             ("get", keys.METRICS_MCP_CALLS), ("zcard", keys.PENDING_TASKS)]
    circuit_all, cache_global, cache_handler, global_, scaling, health, mcp_calls, depth = await _read(r, extra)
    per = []
    for event in events:
        per += [("get", keys.circuit_key(event, "state")), ("get", keys.circuit_key(event, "successes")),
                ("get", keys.circuit_key(event, "failures")), ("get", keys.metrics_last_called(event))]
    circuit = await _read(r, per)
    handlers = {}
    for i, (event, h) in enumerate(zip(events, per_event, strict=True)):
        h = h or {}
        state, successes, failures, last = circuit[4 * i: 4 * i + 4]
        count = int(_num(h.get("count")) or 0)
        entry: dict[str, Any] = {
            "totalCalls": count, "successCount": int(_num(successes) or count),
            "errorCount": int(_num(failures) or 0), "avgResponseTime": _num(h.get("avgLatency")) or 0,
            "circuitState": state or "CLOSED",
            "rateLimitHits": int(_num(counters.get(f"ratelimit:{event}:blocked")) or 0) or None,
            "lastCalled": last or h.get("lastCalled") or None,
        }
        handlers[event] = {k: v for k, v in entry.items() if v is not None}
    cache = _numbers(cache_global, {"sets": "sets"}) | _numbers(cache_handler, {"hits": "hits", "misses": "misses",
                                                                                "hitRate": "hitRate"})
    grouped: dict[str, dict[str, float]] = {}
    for field, value in counters.items():
        prefix, _, rest = field.partition(":")
        number = _num(value)
        if prefix in ("circuit", "ratelimit", "timeout") and rest and number:
            grouped.setdefault(prefix, {})[rest] = number
    out = {
        "handlers": handlers or None,
        "circuitBreaker": _numbers(circuit_all, {k: k for k in ("totalSuccesses", "totalFailures", "totalTrips",
                                                                "successRate")}) or None,
        "queue": {k: v for k, v in {"depth": depth or 0, "pending": _num(queues.get("pendingTasks")) or 0,
                                    "throughput": _num(queues.get("throughput")) or 0}.items()},
        "cache": {"hits": 0, "misses": 0, "sets": 0, **cache} if cache else None,
        "counters": grouped or None,
        "global": _numbers(global_, {"task:success": "taskSuccess", "task:failure": "taskFailure",
                                     "system:success": "systemSuccess", "totalEvents": "totalEvents",
                                     "totalTasks": "totalTasks", "avgLatency": "avgLatency",
                                     "throughput": "throughput"}) or None,
        "scaling": _numbers(scaling, {k: k for k in ("instanceCount", "loadBalance", "totalLoad")}) or None,
        "current": _numbers(current, {"events:total": "eventsTotal", "queue:depth": "queueDepth",
                                      "instances:active": "instancesActive", "tasks:pending": "tasksPending",
                                      "tasks:completed": "tasksCompleted",
                                      "metrics:startTime": "metricsStartTime"}) or None,
        "mcpCalls": int(_num(mcp_calls) or 0) or None,
        "systemHealthCheck": _numbers(health, {"lastCheck": "lastCheck"}) or None,
    }
    return {k: v for k, v in out.items() if v is not None}
