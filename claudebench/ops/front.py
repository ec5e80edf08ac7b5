"""The front of every HTTP request and WebSocket of the ASGI router (issue 10).

In order: the probes (/healthz, /readyz) answer at once; Host and Origin are checked on the
machine surfaces (Django checks its own paths: ALLOWED_HOSTS, CSRF); a caller of a surface that
runs handlers is authenticated (security/authn.py) and its principal set for the pipeline; a
WebSocket message over CB_MAX_WS_MESSAGE_BYTES closes the socket with 1009; one access line is
logged per request. Introspection, /metrics and the probes stay public.
"""

from __future__ import annotations

import random
import time

import orjson
import structlog
from django.conf import settings

from claudebench.core import metrics
from claudebench.core.errors import NotAuthenticated
from claudebench.ops import logs, probes
from claudebench.security import authn, edge

PUBLIC_GET = ("/", "/routes", "/handlers", "/metrics", "/healthz", "/readyz", "/mcp/health", "/ws/stats")
DJANGO_PREFIXES = ("/admin", "/dashboard", "/api", "/static")
JSONRPC_PATHS = ("/rpc", "/rpc/batch", "/mcp")


def _needs_principal(kind: str, method: str, path: str) -> bool:
    if kind == "websocket":
        return True
    if method == "OPTIONS":
        return False
    if method in ("GET", "HEAD") and (path in PUBLIC_GET or path.startswith("/schemas/")):
        return False
    return True


def _json(status: int, payload, extra=()):
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    return [{"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body}]


def _refusal(path: str, status: int, message: str, detail: str, code: int | None = None):
    if path.rstrip("/") in JSONRPC_PATHS and code is not None:
        payload = {"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": detail}, "id": None}
    elif path.startswith("/hooks/"):
        payload = {"error": message, "message": detail}
    else:
        payload = {"success": False, "error": message, "message": detail}
    extra = [(b"www-authenticate", b'Bearer realm="claudebench"')] if status == 401 else []
    from claudebench.transport.http import cors_headers

    return _json(status, payload, [*extra, *cors_headers()])


async def _refuse(scope, receive, send, status: int, message: str, detail: str, code: int | None = None) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})  # before accept: HTTP 403
        return
    from claudebench.transport.http import BodyTooLarge, read_body

    try:  # drain the upload first, so the client reads our answer (SPEC §18.1)
        await read_body(receive, 0)
    except BodyTooLarge:
        pass
    for message_ in _refusal(scope["path"], status, message, detail, code):
        await send(message_)


def _ws_receive(receive, send):
    limit = settings.CB_MAX_WS_MESSAGE_BYTES

    async def checked():
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return message
            data = message.get("bytes") or message.get("text") or ""
            raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
            if len(raw) > limit:
                metrics.refused("ws_message_size")
                await send({"type": "websocket.close", "code": 1009,
                            "reason": f"message of {len(raw)} bytes exceeds {limit} bytes"})
                return {"type": "websocket.disconnect", "code": 1009}
            if raw.count(b"[") + raw.count(b"{") <= settings.CB_MAX_JSON_DEPTH or not _too_deep(raw):
                return message
            # Answered like the consumer's other bad frames; the socket stays open.
            await send({"type": "websocket.send", "text": orjson.dumps({
                "type": "error", "error": {"message": f"JSON nesting deeper than {settings.CB_MAX_JSON_DEPTH} levels",
                                           "code": -32700}, "timestamp": int(time.time() * 1000)}).decode()})

    return checked


def _too_deep(raw: bytes) -> bool:
    from claudebench.core.errors import ParseError

    try:
        edge.check_depth(orjson.loads(raw), raw)
    except ParseError:
        return True  # counted by check_depth
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            metrics.refused("json_depth")
            return True
    return False


def _request_id(scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and text.isprintable():
                return text
    return f"{random.getrandbits(128):032x}"  # unique, not secret: no system call per request


async def serve(scope, receive, send, inner) -> None:
    kind, path = scope["type"], scope.get("path", "")
    method = scope.get("method", "GET") if kind == "http" else "WS"
    started = time.perf_counter()
    rid = _request_id(scope)
    status = [0]
    principal = None

    async def tracking(message) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
            if message["status"] == 413:
                metrics.refused("body_size")
            message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
        elif message["type"] == "websocket.accept":
            status[0] = 101
        elif message["type"] == "websocket.close" and not status[0]:
            status[0] = 403  # closed before the handshake completed: the client sees HTTP 403
        await send(message)

    rid_token = logs.REQUEST_ID.set(rid)
    # JSON logs carry the request id on every record of the request (structlog's contextvars).
    bound = structlog.contextvars.bind_contextvars(request_id=rid) if logs.JSON else None
    try:
        try:
            if kind == "http" and path in ("/healthz", "/readyz") and method in ("GET", "HEAD"):
                code, body = (200, probes.healthz()) if path == "/healthz" else await probes.readyz()
                for message in _json(code, body, [(b"cache-control", b"no-store")]):
                    await tracking(message)
                return
            if path.startswith(DJANGO_PREFIXES) and kind == "http":
                await inner(scope, receive, tracking)
                return
            problem = edge.host_problem(scope)
            if problem:
                metrics.refused("host")
                await _refuse(scope, receive, tracking, 400, "Invalid Host header", problem, -32600)
                return
            problem = edge.origin_problem(scope)
            if problem:
                metrics.refused("origin")
                await _refuse(scope, receive, tracking, 403, "Forbidden", problem, -32002)
                return
            if _needs_principal(kind, method, path):
                try:
                    principal = await authn.authenticate(scope)
                except NotAuthenticated as exc:
                    metrics.refused("unauthenticated")
                    await _refuse(scope, receive, tracking, 401, "Unauthorized", str(exc.data or exc.detail), -32002)
                    return
            token = authn.current.set(principal)
            try:
                if kind == "websocket":
                    await inner(scope, _ws_receive(receive, send), tracking)
                else:
                    await inner(scope, receive, tracking)
            finally:
                authn.current.reset(token)
        finally:
            if logs.ACCESS.isEnabledFor(20):
                logs.access(method=method, path=path, status=status[0],
                            duration_ms=round((time.perf_counter() - started) * 1000, 3),
                            client=(scope.get("client") or ("",))[0],
                            actor=principal.actor if principal is not None else None)
    finally:
        logs.REQUEST_ID.reset(rid_token)
        if bound is not None:
            structlog.contextvars.reset_contextvars(**bound)
