"""`POST /hooks/claude`: Claude Code's HTTP hooks (`"type": "http"`) straight into the pipeline.

Claude Code posts the same hook JSON a command hook reads on stdin and reads a 2xx JSON body as
the hook's output (a non-2xx answer or a timeout is a non-blocking error, so this route fails
open: any failure of ours answers 200 `{}` and is logged). No bridge process is needed.

Authentication: the ASGI front (claudebench/ops/front.py) checks `Authorization: Bearer <token>`
before this route runs, as on every machine surface; `authorize()` is an extra per-route seam.
"""

from __future__ import annotations

import logging
from typing import Any

from claudebench.core import pipeline
from claudebench.core.errors import CbError, ParseError
from claudebench.core.pipeline import CallMeta
from claudebench.transport.http import header, parse_json
from claudebench.transport.jsonrpc import error_object
from hooks.claude_map import answer, event_name, to_call

log = logging.getLogger("claudebench.transport.hooks")

PATH = "/hooks/claude"


def bearer_token(scope) -> str | None:
    value = header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


async def authorize(token: str | None) -> bool:
    """Seam for the trust-boundary issue: check the hook token. Accepts everything for now."""
    return True


async def handle(scope, body: bytes, client_addr: str | None) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for one Claude Code hook call."""
    token = bearer_token(scope)
    if not await authorize(token):
        return 401, {"error": "Unauthorized"}
    try:
        payload = parse_json(body)
    except ParseError:
        return 400, {"error": "Hook body is not valid JSON"}
    if not isinstance(payload, dict):
        return 400, {"error": "Hook body must be a JSON object"}
    call = to_call(payload, {"CLAUDE_PROJECT_DIR": str(payload.get("cwd") or "")})
    if call is None:
        return 200, {}
    method, params = call
    event = event_name(payload)
    meta = CallMeta(transport="hook", session_id=params.get("sessionId"), client_addr=client_addr)
    try:
        result = await pipeline.call(method, params, meta)
    except CbError as exc:
        log.info("hook %s → %s answered %s", event, method, exc.detail)
        return 200, answer(event, error=error_object(exc)).body
    except Exception:
        log.exception("hook %s → %s failed; allowing", event, method)
        return 200, {}
    return 200, answer(event, result).body
