"""Auto-generated REST routes: `POST /{domain}/{action}` per handler (SPEC §2.3)."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from claudebench.core import pipeline, registry
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.errors import (
    CbError,
    HandlerError,
    HandlerTimeout,
    HookBlocked,
    InvalidParams,
    ParseError,
    Unauthorized,
)
from claudebench.core.pipeline import CallMeta
from claudebench.core.registry import HandlerSpec
from claudebench.transport.http import parse_json

log = logging.getLogger("claudebench.transport.rest")


@cache
def route_table() -> dict[str, HandlerSpec]:
    """Path → handler. Two-segment paths first-wins as in the original; every handler also gets
    its full path (`/system/redis/get`), so none is unreachable (SPEC §2.3, §16 row 9)."""
    table: dict[str, HandlerSpec] = {}
    for spec in registry.specs():
        table.setdefault(spec.rest_path, spec)
    for spec in registry.specs():
        table.setdefault(spec.full_path, spec)
    return table


def rest_error(spec: HandlerSpec, exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, body) for a failed REST call: one typed mapping (SPEC §2.3 error table)."""
    event = spec.event
    if isinstance(exc, InvalidParams):
        return 400, {"success": False, "error": exc.rest_error, "details": exc.data or [], "event": event}
    if isinstance(exc, HookBlocked):
        return 403, {"success": False, "error": exc.rest_error, "reason": exc.data or exc.detail, "event": event}
    if isinstance(exc, HandlerError | HandlerTimeout):
        return 500, {"success": False, "error": exc.rest_error, "message": exc.detail, "event": event}
    if isinstance(exc, Unauthorized) and exc.detail != exc.public_message:  # issue 10: which scope is missing
        return exc.http_status, {"success": False, "error": exc.rest_error, "message": exc.detail, "event": event}
    if isinstance(exc, CbError):
        return exc.http_status, {"success": False, "error": exc.rest_error, "event": event}
    return 500, {"success": False, "error": "Internal server error", "event": event}


async def call(spec: HandlerSpec, body: bytes, client_addr: str | None) -> tuple[int, dict[str, Any]]:
    try:
        params = parse_json(body) if body.strip() else {}
    except ParseError:
        params = {}  # SPEC §2.3: a missing or invalid body is treated as {}
    try:
        data = await pipeline.call(spec.event, params, CallMeta(transport="rest", client_addr=client_addr))
    except Exception as exc:  # every failure becomes the REST error envelope
        if not isinstance(exc, CbError):
            log.exception("handler %s failed", spec.event)
        return rest_error(spec, exc)
    return 200, {"success": True, "data": data, "event": spec.event, "timestamp": iso_ms(now_ms())}
