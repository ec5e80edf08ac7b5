"""Audit layer (SPEC §3.6): every call ends in one entry on `cb:audit:general`, hook calls also in
`cb:audit:hooks:decisions` and `cb:audit:tools:{tool}`. The entries are written by the pipeline's
scripts (rejections at admission, results in the outcome), never by a sequential round trip; the
event-bus drain copies them into PostgreSQL.

Entry fields (the contract with the drain): action, actor, resource, result (success | failure |
blocked | allowed), reason, metadata (JSON: eventId, correlationId, transport, sessionId,
instanceId, durationMs when known), timestamp (ISO).
"""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings

from claudebench.core import bus


def actor(ctx) -> str:
    """SPEC §3.6: the caller's client id, else its session id, else this server's instance id."""
    return ctx.meta.client_id or ctx.meta.session_id or settings.INSTANCE_ID


def metadata(ctx, duration_ms: float | None = None) -> str:
    body: dict[str, Any] = {"eventId": ctx.event_id, "transport": ctx.meta.transport,
                            "instanceId": settings.INSTANCE_ID}
    if ctx.meta.correlation_id:
        body["correlationId"] = ctx.meta.correlation_id
    if ctx.meta.session_id:
        body["sessionId"] = ctx.meta.session_id
    if duration_ms is not None:
        body["durationMs"] = round(duration_ms, 3)
    return orjson.dumps(body).decode()


def hook_decision(ctx, wire_input: Any, wire_output: dict[str, Any] | None) -> tuple[str, str, str] | None:
    """(decision, reason, params JSON) for hook.* calls. `allowed` unless the result says
    `allow: false` (SPEC §3.6 recommended; the original logged hooks without `allow` as blocked)."""
    if ctx.spec.domain != "hook":
        return None
    out = wire_output or {}
    decision = "blocked" if out.get("allow") is False else "allowed"
    reason = out.get("reason")
    return decision, reason if isinstance(reason, str) else "", bus.to_json(wire_input)
