"""Circuit-breaker layer (SPEC §3.10, recommended machine; §16 rows 14–15).

State lives in Redis under `cb:circuit:{event}:*` and changes only inside lua/pipeline_admit.lua
(admission: OPEN rejects, HALF_OPEN admits a bounded number of trials) and lua/pipeline_outcome.lua
(CLOSED → OPEN after `trip_after` consecutive failures, HALF_OPEN → CLOSED after
CB_CIRCUIT_CLOSE_AFTER consecutive successes, HALF_OPEN → OPEN on a failed trial with the open
window growing ×1.5 per trip, capped at CB_CIRCUIT_MAX_OPEN_MS). Every process sees one breaker.

What counts as a failure: a timeout, or an unexpected error. A domain refusal (HandlerError such
as "Task not found", bad parameters, a hook block) is the caller's problem, not the handler's
health, so a client sending bad ids cannot open the breaker for everyone.
"""

from __future__ import annotations

from typing import Any

from claudebench.core import keys
from claudebench.core.errors import (
    CircuitOpen,
    HandlerError,
    HandlerTimeout,
    HookBlocked,
    InvalidParams,
    Unauthorized,
)
from claudebench.core.layers import limits_of
from claudebench.core.registry import HandlerSpec

CLOSED, HALF_OPEN, OPEN = "CLOSED", "HALF_OPEN", "OPEN"
GAUGE = {CLOSED: 0.0, HALF_OPEN: 0.5, OPEN: 1.0}  # SPEC §2.4.4 claudebench_circuit_breaker_state

_REFUSALS = (HandlerError, InvalidParams, HookBlocked, Unauthorized)


def failure_type(exc: BaseException) -> str:
    """'timeout', 'error', or '' when the exception does not count against the breaker."""
    if isinstance(exc, HandlerTimeout):
        return "timeout"
    if isinstance(exc, _REFUSALS):
        return ""
    return "error"


def answers_fallback(spec: HandlerSpec) -> bool:
    """Open breaker: read-only handlers answer their fallback; hooks fail open (SPEC §3.10);
    other mutating handlers raise CircuitOpen and never fabricate a result (SPEC §16 row 14)."""
    return spec.fallback is not None and (not spec.mutating or spec.domain == "hook")


def rejected(spec: HandlerSpec, verdict: str) -> CircuitOpen:
    if verdict == "half_full":
        return CircuitOpen(f"Circuit breaker half-open limit exceeded for {spec.event}")
    return CircuitOpen(f"Circuit breaker open for {spec.event}")


def fallback(spec: HandlerSpec, data: Any) -> Any:
    assert spec.fallback is not None
    return spec.fallback(data)


async def states(r, specs: list[HandlerSpec]) -> dict[str, str]:
    """Current breaker state of every handler that has one, in one pipeline round trip."""
    guarded = [s for s in specs if limits_of(s).trip_after]
    if not guarded:
        return {}
    async with r.pipeline(transaction=False) as pipe:
        for spec in guarded:
            pipe.get(keys.circuit(spec.event, "state"))
            pipe.exists(keys.circuit(spec.event, "trips"))
        replies = await pipe.execute()
    out = {}
    for i, spec in enumerate(guarded):
        state, trips = replies[2 * i], replies[2 * i + 1]
        out[spec.event] = OPEN if state == "OPEN" else HALF_OPEN if trips else CLOSED
    return out
