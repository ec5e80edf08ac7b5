"""The /mcp mount: the SDK's Streamable HTTP handling behind a thin ASGI front (SPEC §2.7).

Sessions are kept in Redis, not in the process: `up` runs several uvicorn workers and a client's
requests land on any of them, so a session created by one worker must be known to all. The SDK's
session manager therefore runs in its stateless mode (it parses, dispatches and answers each
JSON-RPC request, SSE or JSON), and this front owns the session:

  * initialize mints a UUID v4, records `cb:mcp:session:{id}` with an idle TTL and returns it in
    `Mcp-Session-Id`; it also sets the service flag and counts a call;
  * any other POST must name a live session (its TTL is refreshed), else 400 with the original's
    JSON-RPC body; tool calls read the id from the header and run as that client;
  * GET opens the server stream of the original: an SSE `ping` every CB_MCP_PING_INTERVAL_MS;
  * DELETE forgets the session (unknown ids silently) and answers the original's JSON;
  * CORS headers on every answer; GET /mcp/health lists the live sessions.

The session manager holds an anyio task group, so there is one per event loop, run by a
background task: started by the ASGI lifespan (uvicorn) or on first use (daphne sends none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref

import orjson
from django.conf import settings
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from claudebench.core import keys
from claudebench.core.clock import now_ms
from claudebench.core.errors import ParseError
from claudebench.core.redis import get_redis
from claudebench.security.edge import check_depth, too_deep
from claudebench.transport.http import (
    PREFLIGHT_HEADERS,
    BodyTooLarge,
    cors_headers,
    header,
    read_body,
    send_empty,
    send_json,
    send_text,
)
from claudebench.transport.mcp import server as mcp_server
from claudebench.transport.mcp import tools

log = logging.getLogger("claudebench.transport.mcp")

SESSION_HEADER = b"mcp-session-id"
NO_SESSION_MESSAGE = "Bad Request: Invalid or missing session ID. Initialize first."
HEALTH_SCAN_LIMIT = 10_000  # sessions listed by /mcp/health at most


class Runtime:
    """The SDK's request handling, running on one event loop."""

    def __init__(self) -> None:
        self.manager = StreamableHTTPSessionManager(app=mcp_server.server(), stateless=True)
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        async with self.manager.run():
            self.ready.set()
            await self.stop.wait()

    async def start(self) -> None:
        async with self.lock:
            if self.task is None:
                self.task = asyncio.create_task(self._run(), name="mcp-session-manager")
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({ready, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not self.ready.is_set():
            ready.cancel()
            self.task.result()  # re-raise the start-up failure
            raise RuntimeError("MCP session manager stopped during start-up")

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.task, 5)


_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()


async def startup() -> Runtime:
    """Start this loop's SDK handling (idempotent): lifespan start-up or the first request."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None:
        runtime = _runtimes[loop] = Runtime()
    if not runtime.ready.is_set():
        await runtime.start()
    return runtime


async def shutdown() -> None:
    """Stop this loop's SDK handling (requests in flight are cancelled)."""
    runtime = _runtimes.pop(asyncio.get_running_loop(), None)
    if runtime is not None:
        await runtime.close()


# --- sessions (Redis) ----------------------------------------------------------------------------

def _idle_s() -> int | None:
    return settings.CB_MCP_SESSION_IDLE_S or None


async def session_touch(session: str | None) -> bool:
    """True when `session` is live; pushes its idle deadline back."""
    if not session:
        return False
    key, idle = keys.mcp_session(session), _idle_s()
    if idle is None:
        return bool(await get_redis().exists(key))
    return bool(await get_redis().expire(key, idle))


async def session_close(session: str) -> None:
    await get_redis().delete(keys.mcp_session(session))


async def health() -> dict:
    sessions = []
    prefix = len(keys.mcp_session(""))
    async for key in get_redis().scan_iter(match=keys.MCP_SESSION_PATTERN, count=1000):
        sessions.append(key[prefix:])
        if len(sessions) >= HEALTH_SCAN_LIMIT:
            break
    sessions.sort()
    return {"status": "healthy", "activeSessions": len(sessions), "sessions": sessions, "transports": len(sessions)}


# --- ASGI plumbing -------------------------------------------------------------------------------

def _with_headers(send, extra: list[tuple[bytes, bytes]]):
    """Add `extra` (and CORS) to the response start, unless the response already has them."""

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            headers += [h for h in [*extra, *cors_headers()] if h[0] not in names]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _replay(body: bytes, receive):
    """A receive() that hands the SDK the body we already read, then the real channel."""
    delivered = False

    async def replay():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _rpc_error(code: int, message: str, request_id=None) -> dict:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}


async def _post(scope, receive, send) -> None:
    try:
        body = await read_body(receive, settings.CB_MAX_BODY_BYTES)
    except BodyTooLarge:
        await send_json(send, 413, _rpc_error(-32600, f"Request body exceeds {settings.CB_MAX_BODY_BYTES} bytes"))
        return
    try:
        message = orjson.loads(body)
        check_depth(message, body)  # issue 10: CB_MAX_JSON_DEPTH, as on /rpc
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            message = None
            with contextlib.suppress(ParseError):
                too_deep()
            await send_json(send, 400, _rpc_error(-32700, f"Parse error: JSON nesting deeper than "
                                                          f"{settings.CB_MAX_JSON_DEPTH} levels"))
            return
        message = None
    except ParseError as exc:
        await send_json(send, 400, _rpc_error(-32700, f"Parse error: {exc.data}"))
        return
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(message, dict) and message.get("method") == "initialize":
        await _initialize(scope, body, receive, send)
        return
    session = header(scope, SESSION_HEADER)
    if not await session_touch(session):
        await send_json(send, 400, _rpc_error(-32000, NO_SESSION_MESSAGE, request_id))
        return
    runtime = await startup()
    echo = _with_headers(send, [(SESSION_HEADER, session.encode())])
    await runtime.manager.handle_request(scope, _replay(body, receive), echo)


async def _initialize(scope, body: bytes, receive, send) -> None:
    await tools.mark_activity()
    session = str(uuid.uuid4())
    status: list[int] = []

    async def watch(message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            if message["status"] < 400:  # the session exists once the client can learn its id
                await get_redis().set(keys.mcp_session(session), now_ms(), ex=_idle_s())
        await send(message)

    # The session header of an earlier session must not reach the new one's answer.
    scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != SESSION_HEADER]}
    runtime = await startup()
    await runtime.manager.handle_request(scope, _replay(body, receive),
                                         _with_headers(watch, [(SESSION_HEADER, session.encode())]))


async def _get(scope, receive, send) -> None:
    session = header(scope, SESSION_HEADER)
    if not await session_touch(session):
        await send_text(send, 400, "Invalid or missing session ID")
        return
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache, no-transform"),
        (b"connection", b"keep-alive"), (SESSION_HEADER, session.encode()), *cors_headers(),
    ]})
    await send({"type": "http.response.body", "body": b": stream open\n\n", "more_body": True})
    await _ping_until_gone(session, receive, send)


async def _ping_until_gone(session: str, receive, send) -> None:
    """SSE `ping` events until the client disconnects or its session is deleted or expires."""
    gone = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch_disconnect())
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), settings.CB_MCP_PING_INTERVAL_MS / 1000)
            if gone.is_set() or not await session_touch(session):
                break
            event = b"event: ping\ndata: " + orjson.dumps({"timestamp": now_ms()}) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()


async def _delete(scope, receive, send) -> None:
    session = header(scope, SESSION_HEADER)
    if session is None:
        await send_text(send, 400, "Missing session ID")
        return
    await session_close(session)  # SPEC §2.7: unknown ids are accepted silently
    await send_json(send, 200, {"jsonrpc": "2.0", "id": None,
                                "result": {"message": "Session terminated successfully", "sessionId": session}})


async def app(scope, receive, send) -> None:
    """ASGI entry for /mcp and /mcp/health."""
    path, method = scope["path"].rstrip("/"), scope["method"]
    if path == "/mcp/health":
        if method in ("GET", "HEAD"):
            await send_json(send, 200, await health())
        else:
            await send_json(send, 405, {"error": "Method not allowed"}, [(b"allow", b"GET")])
        return
    handlers = {"POST": _post, "GET": _get, "DELETE": _delete}
    if method == "OPTIONS":
        await send_empty(send, 204, PREFLIGHT_HEADERS)
        return
    if method not in handlers:
        await send_json(send, 405, {"error": "Method not allowed"}, [(b"allow", b"GET, POST, DELETE, OPTIONS")])
        return
    started = False

    async def tracking(message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await handlers[method](scope, receive, tracking)
    except Exception as exc:
        log.exception("MCP %s failed", method)
        if not started:  # SPEC §2.7: unexpected failure → 500 with a JSON-RPC error
            await send_json(send, 500, _rpc_error(-32603, str(exc) or exc.__class__.__name__))
