"""Handler triggering through pub/sub (SPEC §4.4).

A message on the channel named like a handler runs that handler with the envelope's payload.
Every process listens, but a `SET NX` lock on the envelope id lets exactly one of them run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import orjson

from claudebench.core import keys, pipeline, registry
from claudebench.core.pipeline import CallMeta
from claudebench.core.redis import get_redis

log = logging.getLogger("claudebench.core.triggers")


async def dispatch(channel: str, body: str) -> bool:
    """Run the handler named by `channel` once cluster-wide. Returns True if this process ran it."""
    try:
        env = orjson.loads(body)
    except orjson.JSONDecodeError:
        log.warning("ignored non-JSON message on trigger channel %s", channel)
        return False
    if not isinstance(env, dict) or not isinstance(env.get("id"), str):
        log.warning("ignored message without an envelope id on trigger channel %s", channel)
        return False
    if not await get_redis().set(keys.dispatch(env["id"]), "1", nx=True, ex=60):
        return False
    try:
        from events import background  # runworker processes run it when they are there

        if not await background.hand_off(channel, env.get("payload", {}), CallMeta(transport="pubsub")):
            await pipeline.call(channel, env.get("payload", {}), CallMeta(transport="pubsub"))
    except Exception:  # a failing triggered run must not stop the listener
        log.exception("pub/sub-triggered %s (event %s) failed", channel, env["id"])
    return True


async def run_pubsub(stop: asyncio.Event, handle: Callable[[str, str], Awaitable[object]], *,
                     channels: Sequence[str] = (), patterns: Sequence[str] = ()) -> None:
    """Feed every message on `channels`/`patterns` to `handle(channel, body)`, each in its own task,
    until `stop` is set; in-flight handlers are awaited on the way out."""
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    if channels:
        await pubsub.subscribe(*channels)
    if patterns:
        await pubsub.psubscribe(*patterns)
    running: set[asyncio.Task] = set()
    try:
        while not stop.is_set():
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            task = asyncio.create_task(handle(message["channel"], message["data"]))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def listen(stop: asyncio.Event) -> None:
    """Subscribe to one channel per handler and dispatch until `stop` is set."""
    await run_pubsub(stop, dispatch, channels=[keys.channel(spec.event) for spec in registry.specs()])
