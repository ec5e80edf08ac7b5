"""The ASGI app of the machine surfaces (DESIGN: the hot path, no Django request cycle).

Routes: GET /, POST /rpc, POST /rpc/batch, GET /routes, GET /handlers, GET /schemas/{event},
and POST (+ OPTIONS) on every handler's REST path. Anything else is 404; a known path with the
wrong method is 405 (SPEC §18.3).
"""

from __future__ import annotations

import logging

from django.conf import settings

from claudebench.core import metrics
from claudebench.core.errors import InvalidRequest, ParseError
from claudebench.core.redis import get_redis
from claudebench.transport import hooks, introspection, jsonrpc, rest
from claudebench.transport.http import (
    PREFLIGHT_HEADERS,
    BodyTooLarge,
    cors_headers,
    header,
    parse_json,
    read_body,
    send_bytes,
    send_empty,
    send_json,
)

log = logging.getLogger("claudebench.transport")

_GET_ROUTES = {"/": introspection.liveness, "/routes": introspection.routes, "/handlers": introspection.handlers,
               "/metrics": None}


def _client(scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def _method_not_allowed(send, allowed: str) -> None:
    await send_json(send, 405, {"error": "Method not allowed"}, [(b"allow", allowed.encode())])


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        raise RuntimeError(f"transport app got a {scope['type']} scope")
    path, method = scope["path"], scope["method"]
    # CORS applies to every route (SPEC §2.1): a browser preflights GET /routes too when it sends
    # an Authorization header, so every known path answers OPTIONS, not only the handler routes.
    known = path in ("/rpc", "/rpc/batch") or path in _GET_ROUTES or path.startswith("/schemas/")
    if method == "OPTIONS" and (known or path in rest.route_table()):
        await send_empty(send, 204, PREFLIGHT_HEADERS)
        return
    if path in ("/rpc", "/rpc/batch"):
        if method != "POST":
            await _method_not_allowed(send, "POST, OPTIONS")
            return
        await _rpc(scope, receive, send, batch_only=path == "/rpc/batch")
        return
    if path in ("/ws", "/ws/stats"):  # live view (events/consumers.py): plain HTTP on /ws → 426
        await _ws_http(send, path, method)
        return
    if path == "/" and method == "GET" and _prefers_html(scope):  # SPEC §18.3: browsers → pages
        await send_empty(send, 302, [(b"location", b"/dashboard/")])
        return
    if path in _GET_ROUTES or path.startswith("/schemas/"):
        if method not in ("GET", "HEAD"):
            await _method_not_allowed(send, "GET")
            return
        if path.startswith("/schemas/"):
            status, body = introspection.schemas(path[len("/schemas/"):])
            await send_json(send, status, body)
        elif path == "/metrics":  # Prometheus text (core/metrics.py)
            text, content_type = await metrics.render(get_redis())
            await send_bytes(send, 200, text, [(b"content-type", content_type.encode()), *cors_headers()])
        elif path == "/handlers":  # breaker states come from Redis
            await send_json(send, 200, await introspection.handlers_with_state(get_redis()))
        else:
            await send_json(send, 200, _GET_ROUTES[path]())
        return
    if path == hooks.PATH:  # Claude Code's HTTP hooks (hooks issue): raw hook JSON in, hook output back
        await _hook(scope, receive, send, method)
        return
    spec = rest.route_table().get(path)
    if spec is None:
        await send_json(send, 404, {"error": "Not found", "path": path})
        return
    if method != "POST":
        await _method_not_allowed(send, "POST, OPTIONS")
        return
    try:
        body = await read_body(receive, settings.CB_MAX_BODY_BYTES)
    except BodyTooLarge:
        await send_json(send, 413, {"success": False, "error": "Request body too large", "event": spec.event})
        return
    status, payload = await rest.call(spec, body, _client(scope))
    await send_json(send, status, payload)


def _prefers_html(scope) -> bool:
    """Accept names text/html before (or without) application/json: a browser, not an API client."""
    accept = header(scope, b"accept") or ""
    html, js = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (js < 0 or html < js)


async def _ws_http(send, path: str, method: str) -> None:
    if method not in ("GET", "HEAD"):
        await _method_not_allowed(send, "GET")
    elif path == "/ws":
        await send_json(send, 426, {"error": "Upgrade required", "message": "connect with a WebSocket client"},
                        [(b"upgrade", b"websocket")])
    else:
        from events.consumers import ws_stats

        await send_json(send, 200, await ws_stats(get_redis()))


async def _hook(scope, receive, send, method: str) -> None:
    if method == "OPTIONS":
        await send_empty(send, 204, PREFLIGHT_HEADERS)
        return
    if method != "POST":
        await _method_not_allowed(send, "POST, OPTIONS")
        return
    try:
        body = await read_body(receive, settings.CB_MAX_BODY_BYTES)
    except BodyTooLarge:
        await send_json(send, 413, {"error": "Request body too large"})
        return
    status, payload = await hooks.handle(scope, body, _client(scope))
    await send_json(send, status, payload)


async def _rpc(scope, receive, send, *, batch_only: bool) -> None:
    try:
        body = await read_body(receive, settings.CB_MAX_BODY_BYTES)
    except BodyTooLarge:
        limit = settings.CB_MAX_BODY_BYTES
        await send_json(send, 413, jsonrpc.error_response(InvalidRequest(f"Request body exceeds {limit} bytes",
                                                                         data=f"limit is {limit} bytes")))
        return
    client = _client(scope)
    try:
        obj = parse_json(body)
    except ParseError as exc:
        if batch_only:
            await send_json(send, 200, {"jsonrpc": "2.0", "error": {"code": exc.code, "message": "Invalid batch request"},
                                        "id": None})
        else:
            await send_json(send, 200, jsonrpc.error_response(exc))
        return
    if batch_only and not isinstance(obj, list):
        await send_json(send, 200, {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Batch must be an array"},
                                    "id": None})
        return
    if isinstance(obj, list):
        if not obj:
            await send_json(send, 200, {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Batch cannot be empty"},
                                        "id": None})
            return
        try:
            answers = await jsonrpc.handle_batch(obj, client)
        except InvalidRequest as exc:
            await send_json(send, 200, {"jsonrpc": "2.0", "error": {"code": exc.code, "message": exc.detail},
                                        "id": None})
            return
        if not answers and not batch_only:
            await send_empty(send, 204)  # SPEC §2.2.4: all notifications on /rpc → 204
        else:
            await send_json(send, 200, answers)
        return
    answer = await jsonrpc.handle_one(obj, client)
    if answer is None:
        await send_empty(send, 204)
    else:
        await send_json(send, 200, answer)
