"""The one pipeline every handler call goes through, on every transport (SPEC §3.2).

lookup → input validation → request record → context → layers → handler → output validation.
The layers of SPEC §3.2 step 5 (cache, measured, audited, timeout, rate limit, circuit breaker)
are applied in `_run_layers`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from pydantic import BaseModel, ValidationError

from claudebench.core import bus, registry
from claudebench.core.clock import event_id, now_ms
from claudebench.core.errors import CbError, HandlerError, HandlerTimeout, MethodNotFound
from claudebench.core.redis import get_redis
from claudebench.core.registry import HandlerSpec
from claudebench.core.schema import validate_input

log = logging.getLogger("claudebench.core.pipeline")


@dataclass(frozen=True)
class CallMeta:
    """Who is calling and how: filled by the transport (SPEC §2.2.1, §3.3)."""

    transport: str = "internal"
    client_id: str | None = None
    session_id: str | None = None
    correlation_id: str | None = None
    client_addr: str | None = None


@dataclass
class Ctx:
    """What a handler body gets (SPEC §3.3)."""

    spec: HandlerSpec
    meta: CallMeta
    event_id: str = field(default_factory=event_id)
    timestamp: int = field(default_factory=now_ms)

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
    data = validate_input(spec.input, {} if params is None and meta.transport == "internal" else params)
    await bus.record_request(event, data.model_dump(mode="json", by_alias=True), client_id=meta.client_id)
    ctx = Ctx(spec=spec, meta=meta)
    result = await _run_layers(ctx, data)
    return _output(spec, result)


async def _run_layers(ctx: Ctx, data: Any) -> Any:
    timeout_ms = ctx.spec.limits.timeout_ms
    if timeout_ms is None:
        return await ctx.spec.fn(ctx, data)
    try:
        # wait_for cancels the body on expiry, so a timed-out call has no late side effects.
        return await asyncio.wait_for(ctx.spec.fn(ctx, data), timeout_ms / 1000)
    except TimeoutError:
        raise HandlerTimeout(f"Operation timed out after {timeout_ms}ms") from None


def _output(spec: HandlerSpec, result: Any) -> dict[str, Any]:
    try:
        model = result if isinstance(result, spec.output) else spec.output.model_validate(result)
    except ValidationError as exc:
        # SPEC §3.2 step 6: a bad output is our bug, reported as an internal error.
        log.error("output of %s failed validation: %s", spec.event, exc)
        raise CbError(f"Output validation failed for {spec.event}") from exc
    assert isinstance(model, BaseModel)
    return model.model_dump(mode="json", by_alias=True)


__all__ = ["CallMeta", "Ctx", "HandlerError", "call", "lookup"]
