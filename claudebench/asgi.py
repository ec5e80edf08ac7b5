"""The top-level ASGI router (DESIGN.md): machine surfaces beside Django.

  /rpc, /rpc/batch, handler REST routes, /, /routes, /handlers, /schemas/…  → transport app
  /mcp, /mcp/health                                                          → MCP SDK app
  /admin/, /dashboard/, /api/, /static/                                      → Django
  websocket /ws                                                              → Channels (events/)
  lifespan                                                                   → our start-up/shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "claudebench.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from claudebench.core import pg, pipeline, registry, scripts, triggers  # noqa: E402
from claudebench.core.redis import close_redis, get_redis  # noqa: E402
from claudebench.ops import front  # noqa: E402
from claudebench.transport import mcp  # noqa: E402
from claudebench.transport.app import app as transport_app  # noqa: E402
from events import background, outbox  # noqa: E402

log = logging.getLogger("claudebench.asgi")

DJANGO_PREFIXES = ("/admin", "/dashboard", "/api", "/static")
MCP_PATHS = ("/mcp", "/mcp/health")


class Lifespan:
    """Start-up: load handlers and Lua scripts, start the trigger listener. Shutdown: stop them."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def startup(self) -> None:
        from claudebench.security.bind import refuse_unsafe_bind

        await refuse_unsafe_bind()  # issue 10: a non-loopback HOST needs an active token
        registry.load()
        await scripts.preload(get_redis())
        self.tasks.append(asyncio.create_task(triggers.listen(self.stop)))
        from django.conf import settings

        if settings.CB_SESSION_PROCESSOR:  # hooks: hook.*.executed → session state, once per cluster
            from hooks import sessions

            self.tasks.append(asyncio.create_task(sessions.listen(self.stop)))
        await mcp.startup()  # without a lifespan (daphne) /mcp starts it on first use
        # Everything loaded so far (Django, models, schemas, scripts) lives as long as the process:
        # move it out of the collector's sight, so a full collection scans only what requests
        # made (a full pass over the start-up heap stalled every request for tens of ms).
        gc.collect()
        gc.freeze()

    async def shutdown(self) -> None:
        await mcp.shutdown()
        from events.fanout import close_fanout

        await close_fanout()  # the live view's pub/sub listener, started by the first /ws client
        self.stop.set()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        await pipeline.settle()  # pending post-call bookkeeping (audit, breaker) reaches Redis
        await outbox.close()  # events published through the bus's buffer reach Redis
        await pg.close_pool()
        await close_redis()


async def lifespan(scope, receive, send) -> None:
    state = Lifespan()
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await state.startup()
            except Exception as exc:
                log.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await state.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


_ws_app = None


def _websocket_app():
    global _ws_app
    if _ws_app is None:
        from events.routing import websocket_app

        _ws_app = websocket_app()
    return _ws_app


async def application(scope, receive, send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(scope, receive, send)
        return
    if kind == "channel":  # runworker: handed-off notifications and triggered runs
        await background.application(scope, receive, send)
        return
    # Issue 10: probes, Host/Origin, tokens, WebSocket message size, one access line per request.
    await front.serve(scope, receive, send, _route)


async def _route(scope, receive, send) -> None:
    kind = scope["type"]
    path = scope.get("path", "")
    if kind == "websocket":  # /ws: the live view (events/consumers.py, SPEC §2.6)
        await _websocket_app()(scope, receive, send)
        return
    if kind == "http" and path.rstrip("/") in MCP_PATHS:
        await mcp.app(scope, receive, send)
        return
    if kind == "http" and not path.startswith(DJANGO_PREFIXES):
        await transport_app(scope, receive, send)
        return
    await django_app(scope, receive, send)
