"""The buffered publish of the events bus (SPEC §14.3: producers fire and forget; §14.4 item 11:
events are held in memory while Redis is unreachable and delivered when it is back).

`RedisBus.publish()` builds and checks the envelope here (a payload JSON cannot carry raises at
once), puts it in the outbox of the running event loop and returns its id. One writer task per
loop sends what is queued as pipelined EVALSHAs of lua/exactly_once_delivery.lua (the wire of
SPEC §4.2, the same call core/bus.publish makes), in batches, up to IN_FLIGHT of them on the
connection at once (queued one after the other on one connection, so Redis runs them in order
and a dropped connection fails every batch after the first one it failed): whatever queued while
batches were on their way goes in the next one, so a lone publisher no longer waits a round trip
per event, and the order of one loop's publishes is the order on the streams.

- Bounded: the outbox holds at most CB_BUS_OUTBOX_MAX events (queued plus in flight); a publish
  that finds it full waits for room, in arrival order.
- `wait=True`: the publish returns once the event is stored (or was a duplicate), and raises what
  core/bus.publish would raise (a script error; ConnectionError when Redis cannot be reached, the
  event then leaving the outbox, since its caller knows it failed).
- `flush()`: waits until everything published so far on this loop is stored or failed for good.
- Redis unreachable: the batch goes back to the head of the queue and is sent again with
  backoff (exactly-once makes the resend safe: an event that was stored before the connection
  dropped is a duplicate the second time, counted in cb:duplicates:prevented); one warning per
  outage, one line when it is over.
- A script or data error for one event: logged, counted, that event dropped, the others go on.
- Events with a partition key get PARTITION_EVENT after they are stored, as in core/bus.publish.
- What a crash loses: whatever is still in the outbox. `close()` (ASGI lifespan shutdown,
  consume_streams) flushes with a time limit and logs what it had to drop.

The writer exits when the outbox is empty and a publish starts it again, so an outbox holds no
task (and no reference to its loop) while idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from redis import exceptions as rexc

from claudebench.core import bus as core_bus
from claudebench.core import redis_mux, scripts
from claudebench.core.redis import get_redis

log = logging.getLogger("claudebench.events.outbox")

BATCH_MAX = 1000  # events per pipelined batch
IN_FLIGHT = 2  # batches queued on the connection at once: Redis runs one while we settle the other
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0
CLOSE_TIMEOUT_S = 10.0
# Failures that say nothing about the event itself: keep it and send it again.
UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, OSError, TimeoutError)


@dataclass(slots=True, eq=False)
class _Item:
    event_id: str
    event_type: str
    body: str
    timestamp: int
    partition_key: str | None
    confirm: asyncio.Future | None = None  # wait=True: the publisher's result
    flushers: list[asyncio.Future] | None = None  # flush() calls waiting for this event


@dataclass(slots=True, eq=False)
class _Flight:
    items: list[_Item]
    replies: asyncio.Future  # of the EVALSHA replies, in order
    queued: bool  # on the open connection (redis_mux.queue_many), not a task still connecting


@dataclass
class Counters:
    queued: int = 0  # publishes accepted
    stored: int = 0  # delivered to stream and channel
    duplicates: int = 0  # dropped by the exactly-once gate
    failed: int = 0  # dropped after a script/data error, or not sent (wait=True during an outage, close)
    resent: int = 0  # events sent again after Redis could not be reached
    outages: int = 0  # times Redis became unreachable

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(eq=False)
class Outbox:
    """The outbox of one event loop (made by `get()`)."""

    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self._queue: deque[_Item] = deque()
        self._flights: deque[_Flight] = deque()  # sent, oldest first
        self._in_flight = 0  # events in self._flights
        self._blocked: deque[tuple[_Item, asyncio.Future]] = deque()  # waiting for room
        self._writer: asyncio.Task | None = None
        self._down_since: float | None = None

    # --- publishing -------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Events held: queued and in flight."""
        return len(self._queue) + self._in_flight

    @property
    def pending(self) -> int:
        """Events not stored yet, those waiting for room included."""
        return self.size + len(self._blocked)

    async def put(self, item: _Item) -> None:
        """Queue one event; waits for room when the outbox is full (or others wait already)."""
        if self._blocked or self.size >= settings.CB_BUS_OUTBOX_MAX:
            admitted = asyncio.get_running_loop().create_future()
            entry = (item, admitted)
            self._blocked.append(entry)
            try:
                await admitted
            except asyncio.CancelledError:
                if not admitted.done() or admitted.cancelled():  # never queued: not published
                    try:
                        self._blocked.remove(entry)
                    except ValueError:
                        pass
                    self._hand_over(item)
                    self._admit_blocked()
                raise
            return  # _admit_blocked queued it
        self._enqueue(item)

    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        self.counters.queued += 1
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="events-outbox")

    def _admit_blocked(self) -> None:
        capacity = settings.CB_BUS_OUTBOX_MAX
        while self._blocked and self.size < capacity:
            item, admitted = self._blocked.popleft()
            if admitted.done():  # its publisher was cancelled; it hands its flushers over itself
                continue
            self._enqueue(item)
            admitted.set_result(None)

    def _newest(self) -> _Item | None:
        """The most recent event not stored yet: once it is done, all before it are."""
        for item, admitted in reversed(self._blocked):
            if not admitted.done():
                return item
        if self._queue:
            return self._queue[-1]
        if self._flights:
            return self._flights[-1].items[-1]
        return None

    def _hand_over(self, item: _Item) -> None:
        """An event leaves without being sent: its flush() waiters wait for the one before it."""
        if not item.flushers:
            return
        newest = self._newest()
        if newest is None:
            _resolve(item.flushers)
        else:
            newest.flushers = (newest.flushers or []) + item.flushers
        item.flushers = None

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every event published so far on this loop is stored or failed for good.
        Returns False when `timeout_s` ran out first (the events stay queued)."""
        newest = self._newest()
        if newest is None:
            return True
        done = asyncio.get_running_loop().create_future()
        newest.flushers = (newest.flushers or []) + [done]
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> int:
        """Flush within `timeout_s`, then stop the writer; returns how many events were dropped."""
        if await self.flush(timeout_s):
            return 0
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
        error = rexc.ConnectionError("events outbox closed before the event was stored")
        lost = list(self._queue)  # the cancelled writer put what it had in flight back in the queue
        for item, admitted in self._blocked:
            if not admitted.done():
                admitted.set_exception(error)  # its publish raises: it was never accepted
                lost.append(item)
        self._blocked.clear()
        self._queue.clear()
        for item in lost:
            self._finish(item, error)
        self.counters.failed += len(lost)
        down = f"Redis unreachable for {time.monotonic() - self._down_since:.1f}s" if self._down_since else "Redis slow"
        log.error("events outbox closed after %.1fs with %d event(s) not stored (%s): dropped", timeout_s,
                  len(lost), down)
        return len(lost)

    # --- the writer -------------------------------------------------------------------------------
    async def _write(self) -> None:
        """Send the queue in batches, up to IN_FLIGHT of them on the connection at once, and settle
        them in the order sent. Batches are queued one after another on one connection, so Redis
        runs them in publish order; a new one is queued only behind flights still waiting for their
        replies (a dropped connection answers all of those at once), never behind a failed one."""
        delay = BACKOFF_MIN_S
        loop = asyncio.get_running_loop()
        resend: list[_Item] = []
        try:
            while self._queue or self._flights:
                self._launch()
                resend, reload = await self._settle_first()
                if resend:  # the later flights failed the same way, or not at all: keep the order
                    while self._flights:
                        more, again = await self._settle_first()
                        resend += more
                        reload = reload or again
                    self._queue.extendleft(reversed(resend))
                    count, resend = len(resend), []
                    # NOSCRIPT (a script flush) ran nothing: load it and send again at once.
                    if not (reload and not self._down_since and await self._load_script()):
                        self.counters.resent += count
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, BACKOFF_MAX_S)
                else:
                    delay = BACKOFF_MIN_S
                # Publishers waiting for room resume after the next batch is on the wire: admitted
                # from a callback, their wake-ups queue behind the write the next batch schedules.
                loop.call_soon(self._admit_blocked)
        except asyncio.CancelledError:  # close(), or the loop shutting down: keep them queued
            held = resend + [item for flight in self._flights for item in flight.items]
            for flight in self._flights:
                flight.replies.cancel()
            self._flights.clear()
            self._in_flight = 0
            self._queue.extendleft(reversed(held))
            log.warning("events outbox writer stopped with %d event(s) not stored", self.pending)
            raise
        finally:
            self._writer = None

    async def _settle_first(self) -> tuple[list[_Item], bool]:
        """Wait for the oldest flight's replies and settle it; it stays in flight (counted, and the
        newest event for flush()) until then."""
        flight = self._flights[0]
        outcome = await self._settle(flight.items, await flight.replies)
        self._flights.popleft()
        self._in_flight -= len(flight.items)
        return outcome

    def _launch(self) -> None:
        """Queue batches on the open connection up to IN_FLIGHT; with none open (and nothing in
        flight), one batch through a task that connects first."""
        while self._queue and len(self._flights) < IN_FLIGHT:
            if self._flights and (not self._flights[-1].queued or self._flights[-1].replies.done()):
                return  # behind a connect, or a flight already answered (maybe failed): settle first
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), BATCH_MAX))]
            commands = [("EVALSHA", scripts.SHAS["exactly_once_delivery"], len(k), *k, *a)
                        for k, a in self._calls(batch)]
            replies = redis_mux.of(get_redis()).queue_many(commands)
            queued = replies is not None
            if replies is None:
                if self._flights:  # not connected any more: this batch waits for those before it
                    self._queue.extendleft(reversed(batch))
                    return
                replies = asyncio.get_running_loop().create_task(self._connect_and_send(commands))
            self._flights.append(_Flight(batch, replies, queued))
            self._in_flight += len(batch)
            if not queued:
                return

    @staticmethod
    def _calls(batch: list[_Item]) -> list[tuple[list[str], list[Any]]]:
        maxlen, stream_ttl_s = settings.CB_STREAM_MAXLEN, settings.CB_STREAM_TTL_S
        marker_ttl_s = settings.CB_PROCESSED_EVENT_TTL_S
        return [scripts.exactly_once_delivery_call(event_id=i.event_id, event_type=i.event_type, envelope=i.body,
                                                   maxlen=maxlen, stream_ttl_s=stream_ttl_s,
                                                   marker_ttl_s=marker_ttl_s) for i in batch]

    @staticmethod
    async def _connect_and_send(commands: list[tuple[Any, ...]]) -> list[Any]:
        try:
            return await redis_mux.of(get_redis()).execute_many(commands)
        except UNREACHABLE as exc:  # could not connect
            return [exc] * len(commands)

    @staticmethod
    async def _load_script() -> bool:
        try:
            await redis_mux.of(get_redis()).execute("SCRIPT", "LOAD", scripts.SOURCES["exactly_once_delivery"])
        except UNREACHABLE:
            return False  # the resend finds out, after a pause
        except rexc.ResponseError as exc:
            log.error("events outbox: loading lua/exactly_once_delivery.lua failed: %s", exc)
            return False
        return True

    async def _settle(self, batch: list[_Item], replies: list[Any]) -> tuple[list[_Item], bool]:
        """Count and finish the events of one batch; returns (events to send again, whether Redis
        answered NOSCRIPT: those ran nothing)."""
        resend: list[_Item] = []
        finished: list[tuple[_Item, Exception | None]] = []
        partitioned: list[_Item] = []
        noscript = False
        for item, reply in zip(batch, replies, strict=True):
            if isinstance(reply, UNREACHABLE):
                if item.confirm is not None:  # its caller learns it failed, as with core publish
                    finished.append((item, reply))
                    self.counters.failed += 1
                else:
                    resend.append(item)
            elif isinstance(reply, rexc.NoScriptError):
                noscript = True
                resend.append(item)
            elif isinstance(reply, Exception):
                log.error("event %s (%s) not published: %s", item.event_id, item.event_type, reply)
                self.counters.failed += 1
                finished.append((item, reply))
            elif reply[0] == 0:
                self.counters.stored += 1
                if item.partition_key is not None:
                    partitioned.append(item)
                finished.append((item, None))
            else:
                log.info("duplicate event %s (%s) dropped", item.event_id, item.event_type)
                self.counters.duplicates += 1
                finished.append((item, None))
        first_unreachable = next((r for r in replies if isinstance(r, UNREACHABLE)), None)
        if first_unreachable is not None:
            self._outage(first_unreachable, len(resend))
        elif self._down_since is not None:
            log.warning("events outbox: Redis reachable again after %.1fs, delivering held events",
                        time.monotonic() - self._down_since)
            self._down_since = None
        if partitioned:
            await self._partition(partitioned)
        for item, error in finished:
            self._finish(item, error)
        return resend, noscript

    async def _partition(self, items: list[_Item]) -> None:
        """PARTITION_EVENT for stored events with a partition key; sent again while unreachable."""
        delay = BACKOFF_MIN_S
        while items:
            calls = [scripts.partition_event_call(partition_key=i.partition_key or "", event_id=i.event_id,
                                                  now_ms=i.timestamp, envelope=i.body) for i in items]
            replies = await self._run("partition_event", calls)
            again = []
            for item, reply in zip(items, replies, strict=True):
                if isinstance(reply, UNREACHABLE):
                    again.append(item)
                elif isinstance(reply, Exception):
                    log.error("event %s (%s): partition %s not recorded: %s", item.event_id, item.event_type,
                              item.partition_key, reply)
            if again:
                self._outage(next(r for r in replies if isinstance(r, UNREACHABLE)), len(again))
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
            items = again

    @staticmethod
    async def _run(script: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        try:
            return await scripts.evalsha_many(get_redis(), script, calls)
        except UNREACHABLE as exc:  # could not connect (or lost the connection loading the script)
            return [exc] * len(calls)

    def _outage(self, exc: BaseException, held: int) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.counters.outages += 1
            log.warning("events outbox: Redis unreachable (%s); holding %d event(s) and retrying", exc,
                        held + len(self._queue) + len(self._blocked))

    @staticmethod
    def _finish(item: _Item, error: Exception | None) -> None:
        if item.confirm is not None and not item.confirm.done():
            if error is None:
                item.confirm.set_result(None)
            else:
                item.confirm.set_exception(error)
        if item.flushers:
            _resolve(item.flushers)


def _resolve(futures: list[asyncio.Future]) -> None:
    for f in futures:
        if not f.done():
            f.set_result(None)


_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Outbox] = weakref.WeakKeyDictionary()


def get() -> Outbox:
    """The outbox of the running loop."""
    loop = asyncio.get_running_loop()
    box = _outboxes.get(loop)
    if box is None:
        box = _outboxes[loop] = Outbox()
    return box


async def publish(
    event_type: str, payload: Any, metadata: dict[str, Any] | None = None, *,
    id: str | None = None, correlation_id: str | None = None, partition_key: str | None = None,
    wait: bool = False,
) -> str:
    """Publish through the outbox of this loop; returns the event id (see the module docstring)."""
    if not isinstance(event_type, str) or not event_type:
        raise ValueError(f"event type must be a non-empty string, not {event_type!r}")
    env, body = core_bus.prepare(event_type, payload, metadata, id=id, correlation_id=correlation_id,
                                 partition_key=partition_key)
    item = _Item(env["id"], event_type, body, env["timestamp"], partition_key)
    if wait:
        item.confirm = asyncio.get_running_loop().create_future()
    await get().put(item)
    if item.confirm is not None:
        await item.confirm
    return env["id"]


async def flush(timeout_s: float | None = None) -> bool:
    """Wait until this loop's outbox has stored (or given up on) everything published so far."""
    box = _outboxes.get(asyncio.get_running_loop())
    return True if box is None else await box.flush(timeout_s)


async def close(timeout_s: float = CLOSE_TIMEOUT_S) -> int:
    """At shutdown: flush this loop's outbox within `timeout_s`; returns the events dropped."""
    box = _outboxes.get(asyncio.get_running_loop())
    return 0 if box is None else await box.close(timeout_s)


def stats() -> dict[str, int]:
    """Counters of this loop's outbox, plus what it holds now."""
    box = _outboxes.get(asyncio.get_running_loop())
    if box is None:
        return {**Counters().as_dict(), "pending": 0}
    return {**box.counters.as_dict(), "pending": box.pending}
