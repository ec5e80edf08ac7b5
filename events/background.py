"""Background processing for the ASGI side (issue 8 item 3): Channels `runworker`.

The web process hands JSON-RPC notifications and pub/sub-triggered handler runs to the channel
CB_BACKGROUND_CHANNEL instead of running them itself; `manage.py runworker cb-background` processes
execute them through the full pipeline. Method lookup and input validation still happen in the web
process, so a bad notification is answered as before (SPEC §16 row 56). With CB_BACKGROUND_HANDOFF
off, or when the channel is full, the call runs in the web process as it did without workers.

Delivery through the channel layer is at-most-once: a runworker killed while a message is in
flight loses that run (durable work belongs on the streams and consume_streams instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import asdict
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings

from claudebench.core import pipeline
from claudebench.core.pipeline import CallMeta
from claudebench.core.schema import validate_input
from events import outbox
from events.channel_layer import BackgroundChannelLayer

log = logging.getLogger("claudebench.events.background")

MESSAGE_TYPE = "cb.run"
STOP_RUNS_S = 30.0  # a stopping worker waits this long for the runs it started
STOP_RECEIVE_S = 5.0  # ... and this long for its last receive (one BZPOPMIN, ≤ 1 s) and bookkeeping


async def hand_off(event: str, params: Any, meta: CallMeta) -> bool:
    """Queue one handler call for a runworker. Raises MethodNotFound/InvalidParams like a call
    would; returns False (the caller runs it inline) when hand-off is off or the channel is full."""
    if not settings.CB_BACKGROUND_HANDOFF:
        return False
    spec = pipeline.lookup(event)
    pipeline.authorize(spec, meta)  # issue 10: the runworker runs it as a trusted internal call
    validate_input(spec.input, params)
    message = {"type": MESSAGE_TYPE, "event": event, "params": params, "meta": asdict(meta)}
    try:
        await get_channel_layer().send(settings.CB_BACKGROUND_CHANNEL, message)
    except ChannelFull:
        log.warning("background channel %s is full; running %s in this process",
                    settings.CB_BACKGROUND_CHANNEL, event)
        return False
    except (TypeError, ValueError, OverflowError) as exc:  # params msgpack cannot carry
        log.warning("cannot hand %s to the background (%s); running it in this process", event, exc)
        return False
    return True


async def run(message: dict[str, Any]) -> None:
    """Execute one handed-off call; failures are logged (nobody waits for the answer)."""
    event = message.get("event")
    try:
        await pipeline.call(event, message.get("params", {}), CallMeta(**message.get("meta", {})))
    except Exception:  # a background run has no caller to report to
        log.exception("background run of %s failed", event)


class _Runner:
    """In-flight background runs of this process, bounded by CB_BACKGROUND_CONCURRENCY."""

    def __init__(self) -> None:
        self.gate = asyncio.Semaphore(settings.CB_BACKGROUND_CONCURRENCY)
        self.running: set[asyncio.Task] = set()
        self.stopping = False
        self.done = 0
        self.handback: list[dict[str, Any]] = []  # taken from the channel, not started: sent back on stop
        self.queue: asyncio.Queue | None = None  # runworker's in-process queue of messages it already took
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, self.on_term)
        log.info("background worker ready channel=%s concurrency=%d", settings.CB_BACKGROUND_CHANNEL,
                 settings.CB_BACKGROUND_CONCURRENCY)

    async def start(self, message: dict[str, Any]) -> None:
        await self.gate.acquire()
        if self.stopping:  # issue 10: a stopping worker starts nothing new
            self.gate.release()
            self.handback.append(message)
            return
        task = asyncio.create_task(self._one(message))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _one(self, message: dict[str, Any]) -> None:
        try:
            await run(message)
        finally:
            self.done += 1
            self.gate.release()

    def on_term(self) -> None:
        if self.stopping:
            raise SystemExit(1)  # second signal: stop waiting
        self.stopping = True
        layer = get_channel_layer()
        if isinstance(layer, BackgroundChannelLayer):
            layer.close_receive()  # the receive under way ends at its next empty BZPOPMIN (≤ 1 s)
        asyncio.get_running_loop().create_task(self.finish())

    async def finish(self) -> None:
        """SIGTERM: take nothing more from the channel, let the runs in flight finish, put the
        messages taken but not started back on the channel for another worker, exit 0."""
        if self.running:
            await self._within(asyncio.wait(set(self.running)), STOP_RUNS_S, "runs in flight")
        layer = get_channel_layer()
        if isinstance(layer, BackgroundChannelLayer):
            # A message the last BZPOPMIN popped has reached the listener; its backup entry is cleared.
            await self._within(layer.receive_settled(), STOP_RECEIVE_S, "the receive under way")
        for _ in range(3):
            await asyncio.sleep(0)  # a message held by the application loop moves to handback
        handed = 0
        while True:
            while self.queue is not None and not self.queue.empty():
                self.handback.append(self.queue.get_nowait())
            if not self.handback:
                break
            batch, self.handback = self.handback, []
            for message in batch:
                await layer.send(settings.CB_BACKGROUND_CHANNEL, message)
            handed += len(batch)
        await self._within(pipeline.settle(), STOP_RECEIVE_S, "the runs' bookkeeping")  # breaker, audit
        await outbox.close()  # what this worker's runs published through the bus's buffer
        log.info("background worker stopped runs=%d handed_back=%d", self.done, handed)
        raise SystemExit(0)

    @staticmethod
    async def _within(awaitable, seconds: float, what: str) -> None:
        try:
            await asyncio.wait_for(awaitable, seconds)
        except TimeoutError:
            log.warning("background worker stopping: gave up waiting for %s after %.0fs", what, seconds)


_runner: _Runner | None = None


async def application(scope, receive, send) -> None:
    """The ASGI app of `channel` scopes (what runworker feeds): one loop per channel."""
    global _runner
    if scope.get("channel") != settings.CB_BACKGROUND_CHANNEL:
        raise ValueError(f"no background consumer for channel {scope.get('channel')!r}")
    if _runner is None:
        _runner = _Runner()
    _runner.queue = getattr(receive, "__self__", None)  # asgiref's input_queue.get
    while True:
        message = await receive()
        if message.get("type") != MESSAGE_TYPE:
            log.warning("ignored background message of type %r", message.get("type"))
            continue
        if _runner.stopping:
            _runner.handback.append(message)
            continue
        await _runner.start(message)
