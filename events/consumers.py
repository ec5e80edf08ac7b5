"""The WebSocket at `/ws` (SPEC §2.6): subscribe, unsubscribe, execute, ping; live events pushed.

Client messages are discriminated by `action` or, as the original's documentation writes them,
`type` (SPEC §16 row 11). Every error is answered with an error frame and the socket stays open.
A subscription is mirrored in `cb:ws:subscriptions:{clientId}` (EXPIRE 3600) and the client's
keys are deleted on disconnect (SPEC §16 row 12), so `/ws/stats` sees every client of every
process (SPEC §18.5).

Backfill (an addition): `{"action":"subscribe","events":[…],"backfill":N}` first sends up to the
last N stored events of those patterns (request records left out), oldest first, then the live
ones, with no gap and no duplicate: the socket joins its groups before the streams are read,
live events arriving meanwhile wait in the channel queue, and every push is deduplicated by
envelope id.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from typing import Any

import orjson
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from claudebench.core import keys, pipeline
from claudebench.core.clock import now_ms
from claudebench.core.errors import CbError, MethodNotFound
from claudebench.core.pipeline import CallMeta
from claudebench.core.redis import get_redis
from events import patterns
from events.bus import get_bus
from events.fanout import GROUP, LAYER, PROCESS, get_fanout
from events.redis_bus import order_key

log = logging.getLogger("claudebench.events.consumers")

SUBSCRIPTION_TTL_S = 3600  # SPEC §6.1
MAX_BACKFILL = 1000
MAX_PATTERNS = 100
_SEEN = 10_000  # envelope ids remembered per socket for deduplication
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class BadMessage(Exception):
    """A client message that does not fit the protocol: answered with `code` (SPEC §2.6.2)."""

    def __init__(self, message: str, code: int = -32602) -> None:
        super().__init__(message)
        self.code = code


def new_client_id() -> str:
    """`ws-<epoch-ms>-<random base36>` (SPEC §2.6.1)."""
    return f"ws-{now_ms()}-{''.join(secrets.choice(_B36) for _ in range(9))}"


def _pattern_list(message: dict[str, Any]) -> list[str]:
    events = message.get("events")
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise BadMessage("events must be an array of strings")
    if len(events) > MAX_PATTERNS:
        raise BadMessage(f"at most {MAX_PATTERNS} patterns per message")
    bad = [e for e in events if not patterns.valid(e) or len(e) > 200]
    if bad:
        raise BadMessage(f"invalid pattern {bad[0]!r}: use an event type, '*' or 'prefix.*'")
    return list(dict.fromkeys(events))  # SPEC §18.6: in the order sent, each once


def _backfill_count(message: dict[str, Any]) -> int:
    n = message.get("backfill", 0)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_BACKFILL:
        raise BadMessage(f"backfill must be an integer from 0 to {MAX_BACKFILL}")
    return n


def error_object(exc: BaseException) -> dict[str, Any]:
    """/rpc's code mapping with the raw message kept, as the web UI shows it (SPEC §2.6.2)."""
    if isinstance(exc, CbError):
        body: dict[str, Any] = {"code": exc.code, "message": exc.detail}
        if exc.data is not None:
            body["data"] = exc.data
        return body
    body = {"code": -32603, "message": str(exc) or exc.__class__.__name__}
    if settings.DEBUG:
        body["data"] = exc.__class__.__name__
    return body


class WsConsumer(AsyncWebsocketConsumer):
    """One browser or relay client on `/ws`."""

    channel_layer_alias = LAYER

    async def connect(self) -> None:
        self.client_id = new_client_id()
        self.patterns: list[str] = []
        self.seen: set[str] = set()
        self.seen_order: deque[str] = deque()
        self.jobs: set[asyncio.Task] = set()
        self.fanout = get_fanout()
        await self.fanout.start()  # listening before any group is joined: no gap for backfill
        await self.accept()
        headers = dict(self.scope.get("headers") or [])
        user_agent = headers.get(b"user-agent", b"").decode("latin-1")
        async with get_redis().pipeline(transaction=False) as pipe:
            pipe.hset(keys.ws_client(self.client_id), mapping={
                "connectedAt": now_ms(), "userAgent": user_agent, "process": PROCESS,
                "instance": settings.INSTANCE_ID})
            pipe.expire(keys.ws_client(self.client_id), SUBSCRIPTION_TTL_S)
            await pipe.execute()
        await self.send_json({"type": "connected", "clientId": self.client_id, "timestamp": now_ms()})

    async def disconnect(self, code: int) -> None:
        for job in self.jobs:
            job.cancel()
        for pattern in getattr(self, "patterns", []):
            self.fanout.remove(pattern)
        if getattr(self, "patterns", None):
            await self.channel_layer.group_discard(GROUP, self.channel_name)
        if hasattr(self, "client_id"):
            await get_redis().delete(keys.ws_subscriptions(self.client_id), keys.ws_client(self.client_id))

    async def send_json(self, body: dict[str, Any]) -> None:
        await self.send(text_data=orjson.dumps(body).decode())

    async def send_error(self, message: str, code: int) -> None:
        await self.send_json({"type": "error", "error": {"message": message, "code": code}, "timestamp": now_ms()})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            if text_data is None:
                raise BadMessage("binary frames are not supported; send JSON text", -32603)
            try:
                message = orjson.loads(text_data)
            except orjson.JSONDecodeError:
                raise BadMessage("Invalid JSON", -32603) from None
            if not isinstance(message, dict):
                raise BadMessage("a message must be a JSON object")
            action = message.get("action", message.get("type"))
            if action == "subscribe":
                await self.subscribe(_pattern_list(message), _backfill_count(message))
            elif action == "unsubscribe":
                await self.unsubscribe(_pattern_list(message))
            elif action == "execute":
                self.start_execute(message.get("request"))
            elif action == "ping":
                await get_redis().expire(keys.ws_client(self.client_id), SUBSCRIPTION_TTL_S)
                await self.send_json({"type": "pong", "timestamp": now_ms()})
            else:
                raise BadMessage(f"Unknown action: {action}" if isinstance(action, str)
                                 else "a message needs an 'action' (or 'type') string")
        except BadMessage as exc:
            await self.send_error(str(exc), exc.code)
        except Exception as exc:  # never close the socket over one message
            log.exception("WebSocket message from %s failed", self.client_id)
            await self.send_error(str(exc) or "Internal error", -32603)

    # --- subscriptions ---------------------------------------------------------------------------
    async def subscribe(self, requested: list[str], backfill: int) -> None:
        new = [p for p in requested if p not in self.patterns]
        if new and not self.patterns:  # first pattern: join before the streams are read (no gap)
            await self.channel_layer.group_add(GROUP, self.channel_name)
        for pattern in new:
            self.fanout.add(pattern)
            self.patterns.append(pattern)
        key = keys.ws_subscriptions(self.client_id)
        if requested:
            async with get_redis().pipeline(transaction=False) as pipe:
                pipe.sadd(key, *requested)
                pipe.expire(key, SUBSCRIPTION_TTL_S)
                pipe.expire(keys.ws_client(self.client_id), SUBSCRIPTION_TTL_S)
                await pipe.execute()
        await self.send_json({"type": "subscribed", "events": requested, "timestamp": now_ms()})
        if backfill and requested:
            await self.send_backfill(requested, backfill)

    async def send_backfill(self, requested: list[str], limit: int) -> None:
        bus = get_bus()
        found: dict[str, Any] = {}
        for pattern in requested:
            for event in await bus.recent(pattern, limit=limit):
                found.setdefault(event.id, event)
        # Entry order (numeric: "…-10" comes after "…-9"), as a replay merges streams.
        ordered = sorted(found.values(), key=order_key)[-limit:]
        for event in ordered:
            if self.remember(event.id):
                await self.send_json({"type": "event", "event": event.type, "data": event.envelope(),
                                      "timestamp": now_ms()})

    async def unsubscribe(self, requested: list[str]) -> None:
        held = bool(self.patterns)
        for pattern in requested:
            if pattern in self.patterns:
                self.patterns.remove(pattern)
                self.fanout.remove(pattern)
        if held and not self.patterns:
            await self.channel_layer.group_discard(GROUP, self.channel_name)
        if requested:
            await get_redis().srem(keys.ws_subscriptions(self.client_id), *requested)
        await self.send_json({"type": "unsubscribed", "events": requested, "timestamp": now_ms()})

    def remember(self, event_id: str) -> bool:
        """False when this socket already got `event_id`."""
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        self.seen_order.append(event_id)
        if len(self.seen_order) > _SEEN:
            self.seen.discard(self.seen_order.popleft())
        return True

    async def ws_event(self, message: dict[str, Any]) -> None:
        """Live events from this process's listener (events/fanout.py): [id, type, frame] items."""
        for key, event_type, frame in message["items"]:
            if patterns.any_match(self.patterns, event_type) and self.remember(key):
                await self.send(text_data=frame)

    # --- execute -----------------------------------------------------------------------------------
    def start_execute(self, request: Any) -> None:
        if not isinstance(request, dict):
            raise BadMessage("execute needs a 'request' object (a JSON-RPC request)")
        job = asyncio.create_task(self.execute(request))  # events keep flowing while it runs
        self.jobs.add(job)
        job.add_done_callback(self.jobs.discard)

    async def execute(self, request: dict[str, Any]) -> None:
        has_id = "id" in request
        rid = request.get("id")
        method = request.get("method")
        if not isinstance(method, str) or request.get("jsonrpc", "2.0") != "2.0":
            await self.send_json({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"},
                                  "id": rid})
            return
        metadata = request.get("metadata") if isinstance(request.get("metadata"), dict) else {}
        meta = CallMeta(transport="ws", session_id=_str(metadata.get("sessionId")),
                        correlation_id=_str(metadata.get("correlationId")), client_addr=_addr(self.scope))
        try:
            result = await pipeline.call(method, request.get("params", {}), meta)
        except MethodNotFound as exc:  # answered even without an id (SPEC §2.6.2)
            await self.send_json({"jsonrpc": "2.0", "error": {"code": exc.code, "message": exc.detail}, "id": rid})
            return
        except Exception as exc:
            if not isinstance(exc, CbError):
                log.exception("execute %s over WebSocket failed", method)
            if has_id:
                await self.send_json({"jsonrpc": "2.0", "error": error_object(exc), "id": rid})
            return
        if has_id:
            await self.send_json({"jsonrpc": "2.0", "result": result, "id": rid})


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _addr(scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def ws_stats(r) -> dict[str, Any]:
    """`GET /ws/stats` across every process, from the clients' Redis keys (SPEC §2.6.5, §18.5)."""
    ids: set[str] = set()
    async for key in r.scan_iter(match=keys.WS_CLIENT_PATTERN, count=500):
        ids.add(key.rsplit(":", 1)[1])
    async for key in r.scan_iter(match=keys.WS_SUBSCRIPTIONS_PATTERN, count=500):
        ids.add(key[len(keys.WS_SUBSCRIPTIONS_PREFIX):])
    ordered = sorted(ids)
    async with r.pipeline(transaction=False) as pipe:
        for client_id in ordered:
            pipe.smembers(keys.ws_subscriptions(client_id))
            pipe.hgetall(keys.ws_client(client_id))
        replies = await pipe.execute()
    counts: dict[str, int] = {}
    clients = []
    for i, client_id in enumerate(ordered):
        subs, info = sorted(replies[2 * i]), replies[2 * i + 1] or {}
        for pattern in subs:
            counts[pattern] = counts.get(pattern, 0) + 1
        metadata: dict[str, Any] = {"userAgent": info.get("userAgent", "")}
        if info.get("connectedAt", "").isdigit():
            metadata["connectedAt"] = int(info["connectedAt"])
        if info.get("process"):
            metadata["process"] = info["process"]
        if info.get("instance"):
            metadata["instance"] = info["instance"]
        clients.append({"id": client_id, "subscriptions": subs, "metadata": metadata})
    return {"totalClients": len(clients), "subscriptions": counts, "clients": clients}
