"""JSON-RPC 2.0 over HTTP: `POST /rpc` (single or array) and `POST /rpc/batch` (SPEC §2.2, §18.1)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings

from claudebench.core import pipeline
from claudebench.core.errors import (
    CbError,
    HandlerError,
    HandlerTimeout,
    InvalidRequest,
    MethodNotFound,
    ParseError,
)
from claudebench.core.pipeline import CallMeta
from events import background

log = logging.getLogger("claudebench.transport.jsonrpc")

_NO_ID = object()


def error_object(exc: BaseException) -> dict[str, Any]:
    """The `error` member for any exception (SPEC §2.2.2): one mapping, typed, no text matching."""
    if isinstance(exc, MethodNotFound):
        return {"code": exc.code, "message": exc.detail}
    if isinstance(exc, HandlerError | HandlerTimeout):
        return {"code": exc.code, "message": exc.public_message, "data": exc.detail}
    if isinstance(exc, CbError):
        body: dict[str, Any] = {"code": exc.code, "message": exc.public_message}
        if exc.data is not None:
            body["data"] = exc.data
        return body
    body = {"code": -32603, "message": "Internal error"}
    if settings.DEBUG:
        body["data"] = f"{exc.__class__.__name__}: {exc}"
    return body


def error_response(exc: BaseException, rid: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error_object(exc), "id": rid}


def _envelope_problems(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Strict checks of the request object (SPEC §18.1); each problem names its path."""
    problems = []
    if obj.get("jsonrpc") != "2.0" or not isinstance(obj.get("jsonrpc"), str):
        problems.append({"path": ["jsonrpc"], "message": 'jsonrpc must be the string "2.0"', "code": "invalid_literal"})
    if not isinstance(obj.get("method"), str):
        problems.append({"path": ["method"], "message": "method must be a string", "code": "invalid_type"})
    if "id" in obj and not _valid_id(obj["id"]):
        problems.append({"path": ["id"], "message": "id must be a string, a number or null", "code": "invalid_type"})
    if "metadata" in obj:
        md = obj["metadata"]
        if not isinstance(md, dict):
            problems.append({"path": ["metadata"], "message": "metadata must be an object", "code": "invalid_type"})
        else:
            for name in ("sessionId", "correlationId"):
                if name in md and not isinstance(md[name], str):
                    problems.append({"path": ["metadata", name], "message": f"{name} must be a string",
                                     "code": "invalid_type"})
            ts = md.get("timestamp")
            if "timestamp" in md and (isinstance(ts, bool) or not isinstance(ts, int | float)):
                problems.append({"path": ["metadata", "timestamp"], "message": "timestamp must be a number",
                                 "code": "invalid_type"})
    return problems


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def call_meta(obj: dict[str, Any], client_addr: str | None) -> CallMeta:
    md = obj.get("metadata") or {}
    return CallMeta(transport="rpc", session_id=md.get("sessionId"), correlation_id=md.get("correlationId"),
                    client_addr=client_addr)


async def handle_one(obj: Any, client_addr: str | None) -> dict[str, Any] | None:
    """One request object → its response, or None for a successful notification."""
    if not isinstance(obj, dict):
        return error_response(InvalidRequest(data=[{"path": [], "message": "request must be an object",
                                                    "code": "invalid_type"}]))
    problems = _envelope_problems(obj)
    if problems:
        return error_response(InvalidRequest(data=problems))
    rid = obj["id"] if "id" in obj else _NO_ID
    params = obj["params"] if "params" in obj else {}
    try:
        # A notification goes to the background workers when they run (events/background.py).
        if rid is _NO_ID and await background.hand_off(obj["method"], params, call_meta(obj, client_addr)):
            return None
        result = await pipeline.call(obj["method"], params, call_meta(obj, client_addr))
    except Exception as exc:  # every failure becomes a JSON-RPC error object
        if not isinstance(exc, CbError):
            log.exception("handler %s failed", obj["method"])
        return error_response(exc, None if rid is _NO_ID else rid)
    if rid is _NO_ID:
        return None
    return {"jsonrpc": "2.0", "result": result, "id": rid}


async def handle_batch(items: list[Any], client_addr: str | None) -> list[dict[str, Any]]:
    """Elements run in parallel; answers keep input order, successful notifications drop out."""
    if len(items) > settings.CB_MAX_BATCH_LENGTH:
        from claudebench.core import metrics

        metrics.refused("batch_length")
        raise InvalidRequest(f"Batch longer than {settings.CB_MAX_BATCH_LENGTH} requests")
    answers = await asyncio.gather(*(handle_one(item, client_addr) for item in items))
    return [a for a in answers if a is not None]


__all__ = ["ParseError", "error_response", "handle_batch", "handle_one"]
