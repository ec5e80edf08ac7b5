"""The one pipeline every handler call goes through, on every transport (SPEC §3.2).

lookup → input validation → context → admission → timeout(handler) → output validation → outcome.

The layers of SPEC §3.2 step 5 live in core/layers/, one module each. Redis work per call:
- admission (before the body, one round trip, lua/pipeline_admit.lua): the request record
  (step 3), the cache read, the rate limiter and the breaker check;
- outcome (after the body, lua/pipeline_outcome.lua, off the request path): breaker accounting,
  counters, measured and audit entries, the cache write;
- a mutating handler whose cache scopes have a cached reader also bumps those scopes (one INCR)
  before it answers, so no later read is served a stale entry;
- a handler declared with `prepare` (hook.pre_tool) has its admission sent at once, does its
  deciding while Redis runs it, and queues its writes right behind it on the connection, gated
  on the admission letting the call through (lua/gated_writes.lua): one round trip for the
  whole call, part of the handler's work overlapping it (Prepared).
Layer order as SPEC §3.2: a cache hit skips everything else; a rate-limit rejection never reaches
the breaker; an open breaker answers the fallback (read-only handlers, hooks) or -32001. Two
departures, both from issue 4: a timeout counts as a breaker failure, and fallbacks are never
cached. Nested calls (`ctx.call`) skip the rate limiter (see core/layers/rate_limit.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from pydantic import BaseModel, ValidationError

from claudebench.core import bus, keys, metrics, redis_mux, registry
from claudebench.core.clock import event_id, now_ms
from claudebench.core.errors import CbError, HandlerError, InvalidParams, MethodNotFound
from claudebench.core.layers import admission, cache, circuit, limits_of, outcome, rate_limit, timeout
from claudebench.core.redis import get_redis
from claudebench.core.registry import HandlerSpec
from claudebench.core.schema import validate_input
from claudebench.ops import logs as oplogs
from claudebench.security.scopes import as_principal, current, require

log = logging.getLogger("claudebench.core.pipeline")


@dataclass(frozen=True)
class CallMeta:
    """Who is calling and how: filled by the transport (SPEC §2.2.1, §3.3)."""

    transport: str = "internal"
    client_id: str | None = None
    session_id: str | None = None
    correlation_id: str | None = None
    client_addr: str | None = None
    depth: int = 0  # 0 for a transport's call, +1 per nested ctx.call
    # Who called (security/scopes.py Principal); None = the request's principal if a transport set
    # one (security.scopes.current), else an internal caller. Nested calls inherit it.
    principal: Any = None


@dataclass
class Ctx:
    """What a handler body gets (SPEC §3.3)."""

    spec: HandlerSpec
    meta: CallMeta
    event_id: str = field(default_factory=event_id)
    timestamp: int = field(default_factory=now_ms)
    prepared: Any = None  # the handler's Prepared, when it has `prepare` and it succeeded

    @property
    def event(self) -> str:
        return self.spec.event

    @property
    def persist(self) -> bool:
        return self.spec.persist

    @property
    def redis(self):
        return get_redis()

    @property
    def instance_id(self) -> str:
        return settings.INSTANCE_ID

    @property
    def instance_role(self) -> str:
        return settings.INSTANCE_ROLE

    @property
    def client_id(self) -> str | None:
        return self.meta.client_id

    @property
    def session_id(self) -> str | None:
        return self.meta.session_id or self.meta.client_id

    @property
    def actor(self) -> str:
        """Rate-limit and audit actor: caller's id, else this server's INSTANCE_ID (SPEC §3.6)."""
        return self.meta.client_id or self.meta.session_id or settings.INSTANCE_ID

    async def publish(self, event_type: str, payload: Any, metadata: dict[str, Any] | None = None,
                      **kwargs: Any) -> str:
        kwargs.setdefault("correlation_id", self.meta.correlation_id)
        return await bus.publish(event_type, payload, metadata, **kwargs)

    async def call(self, event: str, params: Any, *, client_id: str | None = None) -> dict[str, Any]:
        """Run another handler through the full pipeline (SPEC §3.3 nested calls)."""
        meta = CallMeta(
            transport="internal",
            client_id=client_id if client_id is not None else self.meta.client_id,
            session_id=self.meta.session_id,
            correlation_id=self.meta.correlation_id,
            client_addr=self.meta.client_addr,
            depth=self.meta.depth + 1,
            principal=self.meta.principal,
        )
        return await call(event, params, meta)


def lookup(event: str) -> HandlerSpec:
    spec = registry.get(event)
    if spec is None:
        raise MethodNotFound(event)
    return spec


async def call(event: str, params: Any, meta: CallMeta | None = None) -> dict[str, Any]:
    """Execute handler `event` with wire `params`; returns the wire (by-alias) output."""
    meta = meta or CallMeta()
    spec = lookup(event)
    authorize(spec, meta)
    try:
        data = validate_input(spec.input, {} if params is None and meta.transport == "internal" else params)
    except InvalidParams as exc:  # issue 10: over-long strings are counted as refused input
        if any(isinstance(i, dict) and i.get("code") in ("string_too_long", "too_long") for i in exc.data or ()):
            metrics.refused("string_length")
        raise
    wire_in = data.model_dump(mode="json", by_alias=True)
    ctx = Ctx(spec=spec, meta=meta)
    lim = limits_of(spec)
    digest = cache.digest(wire_in) if cache.cached(spec) else None
    gate = keys.gate(ctx.event_id) if spec.prepare is not None else None
    pending = admission.admit_soon(ctx, wire_in, lim, digest, gate)
    prepared = None
    if gate is not None:
        # The admission goes out now and Redis runs it while the handler prepares; its gated
        # writes follow it on the connection, so they still run after it (and only if it set
        # the gate), and the call still waits for one round trip.
        redis_mux.of(get_redis()).flush()
        prepared = await _prepare(ctx, data)
        if prepared is not None:
            try:
                prepared.start(gate)
                ctx.prepared = prepared
            except Exception:  # nothing of it was queued: the body does it the ordinary way
                log.warning("gated writes of %s could not be queued", spec.event, exc_info=True)
                prepared = None
    try:
        admitted = await pending
        if gate is not None and prepared is None and admitted.verdict == "ok":
            await redis_mux.of(get_redis()).execute("DEL", gate)  # nothing rides on it (it would live 10 s)
        if admitted.verdict != "ok":
            if prepared is not None:
                await prepared.abandon()  # the gate was not set: nothing of it was written
            return _refused(ctx, data, lim, admitted)
        started = time.perf_counter()
        try:
            out = _output(spec, await timeout.run(ctx, data, lim.timeout_ms))
        except Exception as exc:
            await _after(ctx, lim, exc=exc, started=started, digest=None, tag="", wire_in=wire_in, out=None)
            raise
        await _after(ctx, lim, exc=None, started=started, digest=digest, tag=admitted.tag,
                     wire_in=wire_in, out=out)
        return out
    finally:
        # Prepared's closures hold ctx: left in place, every call would leave a reference cycle
        # (about 24 objects) for the collector to find, a collection every ~30 calls.
        ctx.prepared = None


class Prepared:
    """What a handler's `prepare` computed before its admission (`value`), and its Redis writes.

    `send(gate)` queues the writes, each part gated on the key the admission sets when it lets
    the call through, and returns an awaitable of one flag per part (True: written). The pipeline
    sends the admission first, calls `prepare` while Redis runs it, and starts the writes right
    behind it on the connection, so the call costs one round trip instead of two, and a refused
    call writes nothing. The body awaits `written()`: a part that found no gate (the
    admission itself had to be sent again after a script flush, so it ran behind them) is written
    then by `resend(flags)`, ungated, since the call was let through."""

    __slots__ = ("_pending", "resend", "send", "value")

    def __init__(self, value: Any, send: Callable[[str], Awaitable[tuple[bool, ...]]],
                 resend: Callable[[tuple[bool, ...]], Awaitable[None]]) -> None:
        self.value = value
        self.send = send
        self.resend = resend
        self._pending: Awaitable[tuple[bool, ...]] | None = None

    def start(self, gate: str) -> None:
        self._pending = self.send(gate)

    async def written(self) -> None:
        assert self._pending is not None
        flags = await self._pending
        if not all(flags):
            await self.resend(flags)

    async def abandon(self) -> None:
        if self._pending is not None:
            try:
                await self._pending
            except Exception:  # a refused call: its gated writes did nothing either way
                log.debug("gated writes of a refused call failed", exc_info=True)


async def _prepare(ctx: Ctx, data: Any) -> Prepared | None:
    """The handler's early part; if it fails, the call goes the ordinary way (body after admission)."""
    try:
        return await ctx.spec.prepare(ctx, data)  # type: ignore[misc]
    except Exception:
        log.warning("prepare of %s failed; running it after admission instead", ctx.spec.event, exc_info=True)
        return None


def authorize(spec: HandlerSpec, meta: CallMeta) -> None:
    """Issue 10: the caller's scope must reach the handler's (-32002 / 403 before anything runs)."""
    principal = as_principal(meta.principal) or current.get()
    if principal is not None:
        try:
            require(principal, spec.scope, spec.event)
        except CbError:
            metrics.refused("forbidden")
            raise


def _refused(ctx: Ctx, data: Any, lim: registry.Limits, admitted) -> dict[str, Any]:
    """A call the admission script answered without running the body."""
    spec = ctx.spec
    if admitted.verdict == "hit":
        metrics.observe(spec.event, "cache_hit")
        return orjson.loads(admitted.detail)
    if admitted.verdict == "limited":
        metrics.observe(spec.event, "rate_limited", code=-32000)
        raise rate_limit.rejected(lim.rate or 0, lim.per_ms)
    if circuit.answers_fallback(spec):
        metrics.observe(spec.event, "fallback")
        return _output(spec, circuit.fallback(spec, data))  # SPEC §16 row 14: never cached
    metrics.observe(spec.event, "circuit_rejected", code=-32001)
    raise circuit.rejected(spec, admitted.verdict)


async def _after(ctx: Ctx, lim: registry.Limits, *, exc: Exception | None, started: float, digest: str | None,
                 tag: str, wire_in: Any, out: dict[str, Any] | None) -> None:
    spec = ctx.spec
    seconds = time.perf_counter() - started
    failure = circuit.failure_type(exc) if exc is not None else ""
    code: int | None = None
    if exc is None:
        metrics.observe(spec.event, "success", seconds=seconds)
    else:
        code = exc.code if isinstance(exc, CbError) else -32603
        metrics.observe(spec.event, "failure", seconds=seconds, code=code, failure_type=failure)
    if oplogs.CALLS.isEnabledFor(logging.INFO):  # issue 10: one structured line per call
        oplogs.call(ctx, outcome="success" if exc is None else failure or "failure", seconds=seconds,
                    wire_in=wire_in, out=out, code=code)
    if settings.CB_PIPELINE_OUTCOME_INLINE:
        _record(ctx, lim, exc, failure, seconds, digest, tag, wire_in, out)
        await outcome.settle()
    else:
        # The outcome is built on the loop's next turn, which comes after this call's answer is
        # written: it costs the caller no latency (outcome.settle() waits for it too).
        asyncio.get_running_loop().call_soon(_record, ctx, lim, exc, failure, seconds, digest, tag, wire_in, out)
    bumped = cache.bumped_scopes(spec)
    if bumped:
        await cache.invalidate(get_redis(), bumped)


def _record(ctx: Ctx, lim: registry.Limits, exc: Exception | None, failure: str, seconds: float,
            digest: str | None, tag: str, wire_in: Any, out: dict[str, Any] | None) -> None:
    try:
        outcome.add(ctx, lim, ok=exc is None, failure_type=failure, duration_ms=seconds * 1000,
                    reason=_reason(exc), digest=digest, tag=tag, wire_input=wire_in, wire_output=out)
    except Exception:  # bookkeeping must never break calls; say so and go on
        log.exception("outcome of a %s call could not be recorded", ctx.spec.event)


def _reason(exc: Exception | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, CbError):
        return exc.detail
    return f"{exc.__class__.__name__}: {exc}"


async def settle() -> None:
    """Wait for this event loop's pending outcome bookkeeping (tests, shutdown)."""
    await outcome.settle()


def _output(spec: HandlerSpec, result: Any) -> dict[str, Any]:
    try:
        model = result if isinstance(result, spec.output) else spec.output.model_validate(result)
    except ValidationError as exc:
        # SPEC §3.2 step 6: a bad output is our bug, reported as an internal error.
        log.error("output of %s failed validation: %s", spec.event, exc)
        raise CbError(f"Output validation failed for {spec.event}") from exc
    assert isinstance(model, BaseModel)
    return model.model_dump(mode="json", by_alias=True)


__all__ = ["CallMeta", "Ctx", "HandlerError", "call", "lookup", "settle"]
