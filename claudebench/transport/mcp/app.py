"""The /mcp mount: the SDK's Streamable HTTP session manager behind a thin ASGI front.

The front does what the SDK leaves to the host (SPEC §2.7):
  * the session errors of the original, as 400s with its bodies (the SDK would answer 404);
  * DELETE's JSON acknowledgement, and GET /mcp/health;
  * the service flag and call counter on every initialize;
  * CORS headers on every answer;
  * starting the session manager: from the ASGI lifespan when the server sends one (uvicorn),
    otherwise on the first request (daphne sends no lifespan). The manager owns an anyio task
    group for its sessions, so there is one per event loop, run by a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

import orjson
from django.conf import settings
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

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


class Runtime:
    """One session manager running on one event loop."""

    def __init__(self) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=mcp_server.server(),
            session_idle_timeout=settings.CB_MCP_SESSION_IDLE_S or None,
            max_sessions=settings.CB_MCP_MAX_SESSIONS,
        )
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

    def sessions(self) -> list[str]:
        # The manager keeps no public list of its sessions; this map is the one it serves from.
        return list(getattr(self.manager, "_server_instances", {}))


_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()


def _current(create: bool) -> Runtime | None:
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None and create:
        runtime = _runtimes[loop] = Runtime()
    return runtime


async def startup() -> Runtime:
    """Start this loop's session manager (idempotent): lifespan start-up or the first request."""
    runtime = _current(create=True)
    assert runtime is not None
    if not runtime.ready.is_set():
        await runtime.start()
    return runtime


async def shutdown() -> None:
    """Close every session and stop this loop's session manager."""
    runtime = _runtimes.pop(asyncio.get_running_loop(), None)
    if runtime is not None:
        await runtime.close()


def _live_sessions() -> list[str]:
    runtime = _current(create=False)
    return runtime.sessions() if runtime is not None and runtime.ready.is_set() else []


def _is_live(session: str | None) -> bool:
    return session is not None and session in _live_sessions()


def health() -> dict:
    sessions = _live_sessions()
    return {"status": "healthy", "activeSessions": len(sessions), "sessions": sessions, "transports": len(sessions)}


def _with_cors(send):
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [h for h in cors_headers() if h[0] not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
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


def _without_session(scope) -> dict:
    return {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != SESSION_HEADER]}


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
    except orjson.JSONDecodeError:
        message = None
    request_id = message.get("id") if isinstance(message, dict) else None
    method = message.get("method") if isinstance(message, dict) else None
    session = header(scope, SESSION_HEADER)
    live = _is_live(session)
    if method == "initialize":
        await tools.mark_activity()
        if session is not None and not live:
            scope = _without_session(scope)  # a stale id must not stop a fresh start
    elif not live:
        await send_json(send, 400, _rpc_error(-32000, NO_SESSION_MESSAGE, request_id))
        return
    runtime = await startup()  # only an initialize can get here with the manager not running
    await runtime.manager.handle_request(scope, _replay(body, receive), send)


async def _get(scope, receive, send) -> None:
    session = header(scope, SESSION_HEADER)
    if not _is_live(session):
        await send_text(send, 400, "Invalid or missing session ID")
        return
    await (await startup()).manager.handle_request(scope, receive, send)


async def _delete(scope, receive, send) -> None:
    session = header(scope, SESSION_HEADER)
    if session is None:
        await send_text(send, 400, "Missing session ID")
        return
    if _is_live(session):
        runtime = await startup()
        answered: list[int] = []

        async def swallow(message) -> None:  # the SDK's empty 200 is replaced by the body below
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        await runtime.manager.handle_request(scope, receive, swallow)
        if answered and answered[0] >= 400:
            log.warning("MCP session %s: the SDK refused DELETE with %s", session, answered[0])
    # SPEC §2.7: unknown ids are accepted silently.
    await send_json(send, 200, {"jsonrpc": "2.0", "id": None,
                                "result": {"message": "Session terminated successfully", "sessionId": session}})


async def app(scope, receive, send) -> None:
    """ASGI entry for /mcp and /mcp/health."""
    path, method = scope["path"].rstrip("/"), scope["method"]
    send = _with_cors(send)
    if path == "/mcp/health":
        if method in ("GET", "HEAD"):
            await send_json(send, 200, health())
        else:
            await send_json(send, 405, {"error": "Method not allowed"}, [(b"allow", b"GET")])
        return
    if path != "/mcp":
        await send_json(send, 404, {"error": "Not found", "path": scope["path"]})
        return
    handlers = {"POST": _post, "GET": _get, "DELETE": _delete}
    if method == "OPTIONS":
        await send_empty(send, 204, PREFLIGHT_HEADERS)
    elif method in handlers:
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
    else:
        await send_json(send, 405, {"error": "Method not allowed"}, [(b"allow", b"GET, POST, DELETE, OPTIONS")])
