"""Typed errors. Each carries its JSON-RPC code, HTTP status and public message (SPEC §2.2–2.3).

Transports map a CbError to their wire format in one function each; nothing classifies errors by
their text.
"""

from __future__ import annotations

from typing import Any


class CbError(Exception):
    code = -32603
    http_status = 500
    public_message = "Internal error"
    rest_error = "Internal server error"

    def __init__(self, detail: str | None = None, *, data: Any = None) -> None:
        super().__init__(detail or self.public_message)
        self.detail = detail or self.public_message
        self.data = data


class ParseError(CbError):
    code, http_status, public_message = -32700, 400, "Parse error"


class InvalidRequest(CbError):
    code, http_status, public_message = -32600, 400, "Invalid request"


class MethodNotFound(CbError):
    code, http_status, public_message = -32601, 404, "Method not found"
    rest_error = "Handler not found"

    def __init__(self, method: str) -> None:
        super().__init__(f"Method not found: {method}")
        self.method = method


class InvalidParams(CbError):
    """Input failed its schema (or a cross-field rule of the input): -32602 / 400."""

    code, http_status, public_message = -32602, 400, "Invalid parameters"
    rest_error = "Validation failed"


class RateLimited(CbError):
    code, http_status, public_message = -32000, 429, "Rate limit exceeded"
    rest_error = "Rate limit exceeded"


class CircuitOpen(CbError):
    code, http_status, public_message = -32001, 503, "Circuit breaker is open"
    rest_error = "Service temporarily unavailable"


class Unauthorized(CbError):
    code, http_status, public_message = -32002, 403, "Unauthorized"
    rest_error = "Unauthorized"


class NotAuthenticated(Unauthorized):
    """No token, or one that is unknown, malformed or revoked: -32002 / HTTP 401 (issue 10)."""

    http_status = 401


class HookBlocked(CbError):
    code, http_status, public_message = -32003, 403, "Hook blocked execution"
    rest_error = "Request blocked by hook"


class HandlerError(CbError):
    """A handler refused the call for a domain reason ("Task not found: t-1").

    The message is the handler's own text and is safe to show: it travels in `data` on JSON-RPC
    (message stays "Internal error", as the original's clients expect) and in `message` on REST.
    """


class HandlerTimeout(CbError):
    """The handler ran past its declared timeout and was cancelled."""
