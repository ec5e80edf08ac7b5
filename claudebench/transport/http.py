"""Bare-ASGI HTTP plumbing for the machine surfaces: body reading, JSON parsing, responses."""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.conf import settings

from claudebench.core.errors import ParseError
from claudebench.security.edge import check_depth, too_deep

JSON_TYPE = (b"content-type", b"application/json")


class BodyTooLarge(Exception):
    """The request body passed CB_MAX_BODY_BYTES; it was drained, not kept."""


async def read_body(receive, limit: int) -> bytes:
    """Read the whole body. Past `limit` keep draining (so the client gets an answer, never a
    reset connection: SPEC §18.1) and raise BodyTooLarge at the end."""
    chunks: list[bytes] = []
    size, too_large = 0, False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            too_large = True
            chunks.clear()
        elif chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if too_large:
        raise BodyTooLarge()
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_huge_float_id(obj: Any) -> bool:
    items = obj if isinstance(obj, list) else (obj,)
    return any(isinstance(item, dict) and isinstance(item.get("id"), float) and abs(item["id"]) >= 2**63
               for item in items)


def parse_json(body: bytes) -> Any:
    """Strict JSON (SPEC §18.1): no NaN/Infinity, valid UTF-8, bounded nesting.

    orjson refuses escaped lone surrogates outright; those bodies are valid JSON whose strings
    cannot be stored, which input validation answers with -32602 naming the field. So they are
    parsed again with the standard library (strict about constants, depth bounded by recursion).
    """
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            too_deep()  # issue 10: deeper than orjson's own cap is deeper than ours too
        if "surrogate" not in str(exc) or b"\\u" not in body.lower():
            raise ParseError() from None
    else:
        check_depth(obj, body)  # issue 10: CB_MAX_JSON_DEPTH, a byte count unless the body is bracket-heavy
        if not _has_huge_float_id(obj):
            return obj
        # orjson reads integers past 64 bits as floats; a JSON-RPC id must come back exactly.
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise ParseError() from None
    check_depth(obj, body)
    return obj


def cors_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", settings.CORS_ORIGIN.encode()),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"Mcp-Session-Id"),
        (b"vary", b"Origin"),
    ]


PREFLIGHT_HEADERS = [
    (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Authorization, mcp-session-id"),
    (b"access-control-max-age", b"600"),
]


async def send_bytes(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def dumps(payload: Any) -> bytes:
    """JSON bytes of an answer. orjson refuses lone surrogates (a request may carry `\\ud800` in its id,
    method or a key) and integers past 64 bits (an id may be one); the standard library writes both
    exactly, as ASCII escapes and digits, so the client gets back what it sent (SPEC §18.1)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


async def send_json(send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_bytes(send, status, dumps(payload), [JSON_TYPE, *cors_headers(), *(extra or [])])


async def send_empty(send, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*cors_headers(), *(extra or [])]})
    await send({"type": "http.response.body", "body": b""})


async def send_text(send, status: int, text: str) -> None:
    await send_bytes(send, status, text.encode(), [(b"content-type", b"text/plain; charset=utf-8"), *cors_headers()])


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
