"""Everything recorded after the body ran (breaker outcome, counters, audit, cache write), by
lua/pipeline_outcome.lua, off the request path: the answer never waits for it.

Each event loop has one writer task. Calls append their outcome to its buffer; the writer waits
CB_PIPELINE_OUTCOME_DELAY_MS (default 0: not at all), sends everything buffered in one pipelined
round trip, in call order, then takes what was buffered meanwhile as the next batch. Consecutive
calls of one handler in a batch share one script run (at most scripts.OUTCOME_RUN_MAX): it walks
the breaker and writes the audit entries call by call, and writes each counter once with the sum. So a burst of N calls costs far fewer than N
extra round trips and Redis writes, and one client's sequential calls reach the breaker in the
order they finished. `settle()` waits until the buffer is empty (tests,
shutdown).

Set CB_PIPELINE_OUTCOME_INLINE to run it before answering instead (one more round trip per call;
useful when something must observe the breaker right after a call).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from django.conf import settings

from claudebench.core import metrics, scripts
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.layers import audit, cache
from claudebench.core.redis import get_redis
from claudebench.core.registry import Limits

log = logging.getLogger("claudebench.core.layers.outcome")

MAX_BATCH = 500


class _Writer:
    def __init__(self) -> None:
        self.buffer: list[tuple[str, dict[str, Any]]] = []
        self.task: asyncio.Task | None = None

    def add(self, event: str, outcome: dict[str, Any]) -> None:
        self.buffer.append((event, outcome))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        # Let a few milliseconds of calls gather: one round trip then carries all their outcomes.
        delay_ms = 0 if settings.CB_PIPELINE_OUTCOME_INLINE else settings.CB_PIPELINE_OUTCOME_DELAY_MS
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        while self.buffer:
            batch, self.buffer = self.buffer[:MAX_BATCH], self.buffer[MAX_BATCH:]
            try:
                transitions = await scripts.pipeline_outcome_batch(get_redis(), [o for _, o in batch])
            except Exception:  # bookkeeping must never break calls; say so and go on
                log.warning("outcome bookkeeping of %d call(s) failed", len(batch), exc_info=True)
                continue
            for (event, _), transition in zip(batch, transitions, strict=True):
                if transition:
                    metrics.breaker_transition(event, transition)
        self.task = None  # no await since the buffer was seen empty: the next add() starts a new run


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer] = weakref.WeakKeyDictionary()


def _writer() -> _Writer:
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer()
    return writer


def _domain_metrics(event: str, domain: str) -> str:
    """SPEC §3.9: which extra registry hash this call feeds."""
    if domain in ("hook", "task"):
        return domain
    if event == "system.health":
        return "health"
    if "register" in event or "heartbeat" in event:
        return "scaling"
    return ""


def add(ctx, lim: Limits, *, ok: bool, failure_type: str, duration_ms: float, reason: str,
        digest: str | None, tag: str, wire_input: Any, wire_output: dict[str, Any] | None) -> None:
    """Buffer one call's outcome for this loop's writer."""
    spec = ctx.spec
    kwargs = dict(
        event=spec.event, ok=ok, failure_type=failure_type, duration_ms=duration_ms,
        breaker=bool(lim.trip_after), threshold=lim.trip_after or 0, open_ms=lim.open_ms or 30_000,
        max_open_ms=settings.CB_CIRCUIT_MAX_OPEN_MS, close_after=settings.CB_CIRCUIT_CLOSE_AFTER,
        actor=audit.actor(ctx), now_iso=iso_ms(now_ms()), reason=reason,
        audit_metadata=audit.metadata(ctx, duration_ms), audit_maxlen=settings.CB_AUDIT_MAXLEN,
        audit_ttl_s=settings.CB_AUDIT_TTL_S, cache_digest=digest if ok else None, cache_ttl_s=spec.cache_ttl_s,
        cache_entry=cache.entry(tag, wire_output) if ok and digest and wire_output is not None else "",
        hook_decision=audit.hook_decision(ctx, wire_input, wire_output) if ok else None,
        domain=spec.domain, domain_metrics=_domain_metrics(spec.event, spec.domain),
        timeout_on=lim.timeout_ms is not None,
    )
    _writer().add(spec.event, kwargs)


async def settle() -> None:
    """Wait until this event loop's buffered outcomes are in Redis (also those of calls that
    answered a moment ago and whose bookkeeping is still queued on the loop, core/pipeline.py)."""
    await asyncio.sleep(0)
    writer = _writers.get(asyncio.get_running_loop())
    while writer is not None and writer.task is not None:
        await asyncio.shield(writer.task)
