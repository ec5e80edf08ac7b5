"""Metrics: per-process Prometheus series, the shared Redis counters, and a snapshot for system.metrics.

Prometheus (`GET /metrics`, SPEC §2.4.4). Per-handler calls by outcome, errors by JSON-RPC code,
body latency (histogram), breaker failures and transitions are counted in each process. With
several uvicorn workers, PROMETHEUS_MULTIPROC_DIR must name an empty directory shared by the
workers (`manage.py up` sets one up); each scrape then sums every worker's files. Without it the
series are the answering process's own.

Cluster-wide values live in Redis, written by the pipeline scripts (SPEC §3.5, §3.9, §3.12):
`cb:metrics:counters`, `cb:metrics:global`, `cb:metrics:current`, `cb:metrics:events:{event}`,
the cache and breaker hashes. A scrape reads them in one pipeline and exposes them as gauges
(every instance reports the same cluster values), with every breaker's state.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from claudebench.core import keys, registry
from claudebench.core.layers import circuit, limits_of

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

CALLS = Counter("claudebench_handler_calls", "Handler calls by outcome: success, failure, cache_hit, "
                "rate_limited, circuit_rejected, fallback", ["handler", "outcome"])
ERRORS = Counter("claudebench_handler_errors", "Failed handler calls by JSON-RPC error code", ["handler", "code"])
LATENCY = Histogram("claudebench_handler_duration_seconds", "Handler body duration (timeout layer included)",
                    ["handler"], buckets=BUCKETS)
BREAKER_FAILURES = Counter("claudebench_circuit_breaker_failures", "Calls counted against a breaker",
                           ["handler", "error_type"])
BREAKER_TRANSITIONS = Counter("claudebench_circuit_breaker_transitions", "Breaker trips and recoveries seen "
                              "by this process", ["handler", "transition"])

# Issue 10: requests refused at the trust boundary or by a size limit, by reason (unauthenticated,
# forbidden, host, origin, body_size, json_depth, batch_length, ws_message_size, string_length).
REFUSED = Counter("claudebench_requests_refused", "Requests refused at the edge, by reason", ["reason"])


def refused(reason: str) -> None:
    REFUSED.labels(reason).inc()


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: the label lookup costs more than the increment, and
    every call of a handler uses the same few children."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe(event: str, outcome: str, *, seconds: float | None = None, code: int | None = None,
            failure_type: str = "") -> None:
    _child(CALLS, event, outcome).inc()
    if seconds is not None:
        _child(LATENCY, event).observe(seconds)
    if code is not None:
        ERRORS.labels(event, str(code)).inc()
    if failure_type:
        BREAKER_FAILURES.labels(event, failure_type).inc()


def breaker_transition(event: str, transition: str) -> None:
    BREAKER_TRANSITIONS.labels(event, transition).inc()


# --- the shared Redis values --------------------------------------------------------------------------
_HASHES = {
    "counters": keys.METRICS_COUNTERS, "current": keys.METRICS_CURRENT, "global": keys.METRICS_GLOBAL,
    "queues": keys.METRICS_QUEUES, "circuit": keys.METRICS_CIRCUIT_ALL, "cache": keys.METRICS_CACHE_HANDLER,
    "cacheSets": keys.METRICS_CACHE_GLOBAL, "scaling": keys.METRICS_SCALING,
    "systemHealth": keys.METRICS_SYSTEM_HEALTH, "validationCache": keys.METRICS_VALIDATION_CACHE,
}


async def snapshot(r) -> dict[str, Any]:
    """Every pipeline metric in Redis, read in one round trip: the hashes of `_HASHES` by name, and
    `handlers` = {event: {totalCalls, successCount, errorCount, avgResponseTime, lastCalled,
    circuitState, rateLimitHits, cacheHits, cacheMisses, cacheHitRate}} for every registered
    handler (zeros included). For system.metrics (SPEC §5.3.3) and the /metrics scrape."""
    specs = registry.specs()
    guarded = [s for s in specs if limits_of(s).trip_after]
    async with r.pipeline(transaction=False) as pipe:
        for key in _HASHES.values():
            pipe.hgetall(key)
        for spec in specs:
            pipe.hgetall(keys.metrics_events(spec.event))
        for spec in guarded:
            pipe.get(keys.circuit(spec.event, "state"))
            pipe.exists(keys.circuit(spec.event, "trips"))
        replies = await pipe.execute()
    out: dict[str, Any] = dict(zip(_HASHES, replies[: len(_HASHES)], strict=True))
    rest = replies[len(_HASHES):]
    per_event, states = rest[: len(specs)], rest[len(specs):]
    breaker = {}
    for i, spec in enumerate(guarded):
        state, trips = states[2 * i], states[2 * i + 1]
        breaker[spec.event] = circuit.OPEN if state == "OPEN" else circuit.HALF_OPEN if trips else circuit.CLOSED
    counters, cache = out["counters"], out["cache"]
    handlers = {}
    for spec, h in zip(specs, per_event, strict=True):
        e = spec.event
        hits, misses = int(cache.get(f"hits:{e}", 0)), int(cache.get(f"misses:{e}", 0))
        handlers[e] = {
            "totalCalls": int(h.get("count", 0)), "successCount": int(h.get("success", 0)),
            "errorCount": int(h.get("errors", 0)), "avgResponseTime": float(h.get("avgLatency", 0)),
            "lastCalled": h.get("lastCalled"), "circuitState": breaker.get(e, circuit.CLOSED),
            "rateLimitHits": int(counters.get(f"ratelimit:{e}:blocked", 0)),
            "cacheHits": hits, "cacheMisses": misses,
            "cacheHitRate": round(hits * 100 / (hits + misses), 2) if hits + misses else None,
        }
    out["handlers"] = handlers
    return out


class _Snapshot:
    """A collector over one snapshot (built per scrape)."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self):
        snap = self.snap
        state = GaugeMetricFamily("claudebench_circuit_breaker_state",
                                  "Breaker state: 0 closed, 0.5 half-open, 1 open", labels=["handler"])
        calls = GaugeMetricFamily("claudebench_cluster_handler_calls",
                                  "Calls of each handler across all instances (cb:metrics:events:*)",
                                  labels=["handler"])
        for event, h in snap["handlers"].items():
            state.add_metric([event], circuit.GAUGE[h["circuitState"]])
            calls.add_metric([event], h["totalCalls"])
        yield state
        yield calls
        counters = GaugeMetricFamily("claudebench_pipeline_counter",
                                     "cb:metrics:counters: layer (circuit, ratelimit, timeout), handler, outcome",
                                     labels=["layer", "handler", "outcome"])
        for field, value in snap["counters"].items():
            layer, _, rest = field.partition(":")
            handler, _, outcome = rest.rpartition(":")
            counters.add_metric([layer, handler, outcome] if handler else [field, "", ""], float(value))
        yield counters
        domains = GaugeMetricFamily("claudebench_domain_calls", "cb:metrics:global <domain>:<outcome>",
                                    labels=["domain", "outcome"])
        for field, value in snap["global"].items():
            domain, _, outcome = field.partition(":")
            if outcome in ("success", "failure"):
                domains.add_metric([domain, outcome], float(value))
        yield domains
        events = GaugeMetricFamily("claudebench_events_total_current", "cb:metrics:current events:total")
        events.add_metric([], float(snap["current"].get("events:total", 0)))
        yield events


class _Local:
    """This process's own series (no multi-process directory)."""

    def collect(self):
        return REGISTRY.collect()


async def render(r) -> tuple[bytes, str]:
    """The Prometheus text exposition of one scrape: (body, content type)."""
    scrape = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape.register(_Local())
    scrape.register(_Snapshot(await snapshot(r)))
    return generate_latest(scrape), CONTENT_TYPE_LATEST
