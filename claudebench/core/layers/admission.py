"""Everything decided before the body runs, in one round trip: the request record (SPEC §3.2
step 3), the cache read, the rate limiter and the breaker admission (lua/pipeline_admit.lua)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from django.conf import settings

from claudebench.core import bus, scripts
from claudebench.core.clock import iso_ms, now_ms, random_base36
from claudebench.core.layers import audit, cache, rate_limit
from claudebench.core.redis import get_redis
from claudebench.core.registry import Limits
from claudebench.core.scripts import Admission

# How long a let-through call's gate lives when its gated writes never arrive (a dropped
# connection): they normally follow the admission on the connection within microseconds.
GATE_TTL_MS = 10_000


def request_record(ctx, wire_input: Any) -> str:
    """The request envelope, marked `kind: request` so consumers never re-execute it (SPEC §4.7)."""
    metadata: dict[str, Any] = {"kind": "request"}
    if ctx.meta.client_id:
        metadata["clientId"] = ctx.meta.client_id
    return bus.to_json(bus.envelope(ctx.spec.event, wire_input, metadata))  # deep inputs too


def admit_soon(ctx, wire_input: Any, lim: Limits, digest: str | None, gate: str | None = None) -> Awaitable[Admission]:
    """Queue the admission script now; await the result for the verdict. With `gate`, a call let
    through sets that key, for the handler's writes queued right behind (core/pipeline.Prepared)."""
    spec, meta = ctx.spec, ctx.meta
    return scripts.pipeline_admit_soon(
        get_redis(), event=spec.event, actor=rate_limit.actor(meta), envelope=request_record(ctx, wire_input),
        stream_maxlen=settings.CB_STREAM_MAXLEN, stream_ttl_s=settings.CB_STREAM_TTL_S,
        rate=lim.rate if rate_limit.applies(meta, lim.rate) else 0, window_ms=lim.per_ms,
        member=random_base36(9), breaker=bool(lim.trip_after),
        half_open_trials=settings.CB_CIRCUIT_HALF_OPEN_TRIALS,
        half_open_window_ms=settings.CB_CIRCUIT_HALF_OPEN_WINDOW_MS,
        cache_digest=digest, cache_scopes=cache.scopes(spec) if digest else (), now_iso=iso_ms(now_ms()),
        audit_metadata=audit.metadata(ctx), audit_maxlen=settings.CB_AUDIT_MAXLEN,
        audit_ttl_s=settings.CB_AUDIT_TTL_S, gate=gate, gate_ttl_ms=GATE_TTL_MS,
    )
