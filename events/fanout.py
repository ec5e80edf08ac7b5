"""Bus events to WebSocket clients, on every server process (SPEC §2.6.3, §16 row 10; DESIGN flow 2).

One Redis pub/sub pattern listener per web process (PSUBSCRIBE `*`: a bus event is published on
its bare type) feeds Channels groups of the in-memory layer `live` (settings.CHANNEL_LAYERS: the
groups never leave their process, and the Redis layer costs a round trip per socket per event,
which B5 measured as the bottleneck). The group is per process (`cbws.<process>`: every socket
of this process holding at least one pattern), so each process's listener serves its own sockets. The listener reads what Redis has
already buffered as one burst (up to BATCH events) and sends it as one group message, in publish
order; each socket keeps the events its patterns match and drops ids it has already sent (the
backfill). The listener counts this process's patterns, so events nobody here wants are not even
parsed. The frame is serialised once per event, not once per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import weakref
from collections import Counter
from typing import Any

import orjson
from channels.layers import get_channel_layer

from claudebench.core.clock import now_ms
from claudebench.core.redis import get_redis

log = logging.getLogger("claudebench.events.fanout")

PROCESS = f"{os.getpid()}-{secrets.token_hex(3)}"
MESSAGE_TYPE = "ws.event"  # dispatched to WsConsumer.ws_event
GROUP = f"cbws.{PROCESS}"  # every subscribed socket of this process
BATCH = 200  # events per group message at most
LAYER = "live"  # settings.CHANNEL_LAYERS alias: in-memory, since the groups never leave the process
_raw_ids = itertools.count(1)


def patterns_for(event_type: str) -> list[str]:
    """Every pattern that matches `event_type`: `*`, itself, and `<prefix>.*` for each dotted prefix."""
    parts = event_type.split(".")
    return ["*", event_type, *(".".join(parts[:i]) + ".*" for i in range(1, len(parts)))]


def frame_of(channel: str, body: str) -> tuple[str, str, str] | None:
    """(dedupe id, event type, WebSocket frame) of one pub/sub message; None for non-JSON bodies."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("id"), str) and isinstance(data.get("type"), str):
        event_type, key = data["type"], data["id"]
    else:  # a raw PUBLISH (SPEC §4.5): pushed too, under its channel name
        event_type, key = channel, f"raw-{PROCESS}-{next(_raw_ids)}"
    frame = orjson.dumps({"type": "event", "event": event_type, "data": data, "timestamp": now_ms()}).decode()
    return key, event_type, frame


class Fanout:
    """The listener of one event loop and the count of local subscribers per pattern."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.delivered = 0

    def add(self, pattern: str) -> None:
        self.counts[pattern] += 1

    def remove(self, pattern: str) -> None:
        self.counts[pattern] -= 1
        if self.counts[pattern] <= 0:
            del self.counts[pattern]

    async def start(self) -> None:
        if self.task is None or self.task.done():
            self.ready.clear()
            self.task = asyncio.create_task(self._run(), name="cb-ws-fanout")
        await asyncio.wait_for(self.ready.wait(), 10)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    async def _run(self) -> None:
        backoff = 0.1
        while not self.stop.is_set():
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live view listener lost its connection; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _listen(self) -> None:
        layer = get_channel_layer(LAYER)
        pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe("*")
            self.ready.set()
            log.info("live view listener ready process=%s", PROCESS)
            while not self.stop.is_set():
                message = await pubsub.get_message(timeout=1.0)
                batch: list[tuple[str, str]] = []
                while message is not None and len(batch) < BATCH:  # what is already buffered rides along
                    if message.get("type") == "pmessage":
                        batch.append((message["channel"], message["data"]))
                    message = await pubsub.get_message(timeout=0)
                if batch:
                    await self.route(layer, batch)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def route(self, layer, batch: list[tuple[str, str]]) -> None:
        """One group message for a burst of events, in the order they were published."""
        if not self.counts:
            return
        items: list[list[str]] = []
        for channel, body in batch:
            if not any(self.counts.get(p) for p in patterns_for(channel)):
                continue  # no socket here listens to this channel (bus events: channel = type)
            found = frame_of(channel, body)
            if found is None:
                continue
            key, event_type, frame = found
            if any(self.counts.get(p) for p in patterns_for(event_type)):
                items.append([key, event_type, frame])
                self.delivered += 1
        if items:  # one message per socket per burst; each socket keeps the events its patterns match
            await layer.group_send(GROUP, {"type": MESSAGE_TYPE, "items": items})


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def get_fanout() -> Fanout:
    loop = asyncio.get_running_loop()
    fan = _fanouts.get(loop)
    if fan is None:
        fan = _fanouts[loop] = Fanout()
    return fan


async def close_fanout() -> None:
    """Stop this loop's listener (lifespan shutdown, tests)."""
    fan = _fanouts.pop(asyncio.get_running_loop(), None)
    if fan is not None:
        await fan.close()
