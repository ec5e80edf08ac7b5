"""The Redis side of durable subscriptions: one consumer group per subscription (SPEC §4.7).

discover (SCAN, groups at id 0 with MKSTREAM) → read (XREADGROUP … BLOCK) or claim (XAUTOCLAIM of
entries idle past CB_BUS_CLAIM_IDLE_MS) → deliver → one MULTI: XACK, dead letters, counters.
An entry is acknowledged only after its subscriber succeeded, was dead-lettered, or was skipped;
a TransientError leaves it pending and backs off, so a dependency outage delays but loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from claudebench.core import keys, redis_mux
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.redis import get_redis
from events import delivery, entries, patterns
from events.delivery import Outcome
from events.subscriptions import Subscription
from events.types import Event, TransientError

log = logging.getLogger("claudebench.events.consumer")

Entry = tuple[str, str, dict[str, str]]  # stream, entry id, fields


@dataclass
class Counters:
    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    claimed: int = 0
    transient: int = 0

    def add(self, other: Counters) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def __str__(self) -> str:
        return (f"processed={self.processed} failed={self.failed} retried={self.retried} "
                f"dead_lettered={self.dead_lettered} skipped={self.skipped} claimed={self.claimed}")


@dataclass
class _Batch:
    """What one round decided: ids to ack per stream, dead letters to write, counters."""

    ack: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    dead: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    last_id: str | None = None


def flat_entries(reply: Any) -> list[Entry]:
    """Entries of an XREADGROUP reply as the multiplexed connection gives it (RESP2, undecoded
    structure: [[stream, [[id, [field, value, ...]], ...]], ...], or nil when nothing came)."""
    return [(stream, entry_id, {flat[0]: flat[1]} if len(flat) == 2 else dict(zip(flat[::2], flat[1::2], strict=True)))
            for stream, items in reply or () for entry_id, flat in items if flat is not None]


def _discard(reply: Any) -> None:
    """A reply nobody will read: retrieve its exception when it comes, so none is logged."""
    if isinstance(reply, asyncio.Future):
        reply.add_done_callback(lambda f: f.cancelled() or f.exception())


async def ensure_group(r, stream: str, group: str) -> bool:
    """XGROUP CREATE at 0 (not $: entries written before the group existed are read too)."""
    try:
        await r.xgroup_create(stream, group, id="0", mkstream=True)
        return True
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


async def scan_streams(r, sources: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for pattern in sources:
        async for key in r.scan_iter(match=pattern, count=1000, _type="stream"):
            found.add(key)
    return found


def dead_letter_fields(sub: Subscription, event: Event | None, stream: str, entry_id: str,
                       fields: dict[str, str], reason: str, attempts: int) -> dict[str, str]:
    """A cb:dlq:{type} entry: the envelope with failure metadata, and what is needed to requeue it."""
    if event is None:
        env: dict[str, Any] = {"id": f"{stream}/{entry_id}", "type": keys.stream_type(stream) or "unknown",
                               "payload": None, "timestamp": entries.entry_ms(entry_id)}
        md: dict[str, Any] = {}
    else:
        env = event.envelope()
        md = dict(event.metadata)
    md.update(failureReason=reason, attempts=attempts, originalStreamId=entry_id, originalStream=stream,
              subscription=sub.name, group=sub.group, failedAt=iso_ms(now_ms()))
    md.pop("requeuedFor", None)
    env["metadata"] = md
    return {"data": orjson.dumps(env).decode(), "stream": stream, "entry": entry_id, "group": sub.group,
            "fields": orjson.dumps(fields).decode()}


class GroupConsumer:
    """Runs one subscription as consumer `name` of its group, until `stop` is set."""

    def __init__(self, sub: Subscription, name: str, stop: asyncio.Event) -> None:
        self.sub, self.name, self.stop = sub, name, stop
        self.streams: set[str] = set()
        self.totals = Counters()
        self._discover_at = 0.0
        self._claim_at = 0.0
        self._own_pending = True  # first read our own pending entries (a restart with the same name)
        self._transient_ms = 0
        self._prefetched: list[Entry] = []  # read while the previous batch was being delivered

    # --- streams and groups ---------------------------------------------------------------------
    async def discover(self) -> int:
        r = get_redis()
        wanted = {s for s in await scan_streams(r, self.sub.sources) if self.sub.wants_stream(s)}
        if keys.STREAM_PATTERN in self.sub.sources:
            wanted |= {keys.stream(t) for t in patterns.exact_types(self.sub.patterns)}
        new = wanted - self.streams
        for stream in sorted(new):
            await ensure_group(r, stream, self.sub.group)
        self.streams |= new
        self._discover_at = time.monotonic() + settings.CB_BUS_DISCOVER_INTERVAL_MS / 1000
        return len(new)

    # --- reading -------------------------------------------------------------------------------
    async def _read(self) -> list[Entry]:
        r = get_redis()
        if self._own_pending:
            reply = await r.xreadgroup(self.sub.group, self.name, dict.fromkeys(self.streams, "0"),
                                       count=self.sub.batch_size)
            found = [(s, i, f) for s, items in reply for i, f in items if f is not None]
            gone = [(s, i) for s, items in reply for i, f in items if f is None]
            for stream, entry_id in gone:  # trimmed away while pending: nothing left to deliver
                await r.xack(stream, self.sub.group, entry_id)
            if not found and not gone:
                self._own_pending = False
            return found
        block = self.sub.batch_timeout_ms if self.sub.batch else settings.CB_BUS_BLOCK_MS
        reply = await r.xreadgroup(self.sub.group, self.name, dict.fromkeys(self.streams, ">"),
                                   count=self.sub.batch_size, block=max(1, min(block, settings.CB_BUS_BLOCK_MS)))
        return [(s, i, f) for s, items in reply or [] for i, f in items]

    async def claim(self) -> list[Entry]:
        """XAUTOCLAIM entries idle past CB_BUS_CLAIM_IDLE_MS (their consumer died) on every stream."""
        self._claim_at = time.monotonic() + settings.CB_BUS_CLAIM_INTERVAL_MS / 1000
        if not self.streams:
            return []
        streams = sorted(self.streams)
        async with get_redis().pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xautoclaim(stream, self.sub.group, self.name, settings.CB_BUS_CLAIM_IDLE_MS,
                                start_id="0-0", count=self.sub.batch_size)
            replies = await pipe.execute(raise_on_error=False)
        found: list[Entry] = []
        for stream, reply in zip(streams, replies, strict=True):
            if isinstance(reply, Exception):
                continue  # NOGROUP after the stream expired: rediscovery handles it
            found += [(stream, i, f) for i, f in reply[1] if f is not None]
        if found:
            self._claim_at = 0.0  # more may be waiting
            log.info("%s claimed %d pending entries of a stopped consumer", self.sub.name, len(found))
        return found

    # --- one round -----------------------------------------------------------------------------
    async def round(self) -> Counters:
        """Discover, claim or read once, and process what came back. Returns this round's counters."""
        if time.monotonic() >= self._discover_at:
            await self.discover()
        if not self.streams:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), settings.CB_BUS_BLOCK_MS / 1000)
            return Counters()
        claimed: list[Entry] = []
        if time.monotonic() >= self._claim_at:
            claimed = await self.claim()
        prefetched, self._prefetched = self._prefetched, []
        try:
            found = claimed + prefetched if claimed or prefetched else await self._read()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.info("%s: a stream or group disappeared; rediscovering", self.sub.name)
            self.streams.clear()
            self._discover_at = 0.0
            return Counters()
        # After a full batch more is waiting: read the next one now, so that Redis serves it while
        # this one is delivered (its reply is awaited after the acks; its entries are ours).
        ahead = None
        if not claimed and len(found) >= self.sub.batch_size and not self._own_pending and not self.stop.is_set():
            streams = list(self.streams)
            ahead = redis_mux.of(get_redis()).submit("XREADGROUP", "GROUP", self.sub.group, self.name, "COUNT",
                                                     self.sub.batch_size, "STREAMS", *streams, *(">" for _ in streams))
            await asyncio.sleep(0)  # one loop turn: the read goes out before the deliveries start
        try:
            counters = await self.process(found, claimed=len(claimed))
        except BaseException:
            if ahead is not None:  # read but never delivered: ours, pending; read them again first
                self._own_pending = True
                _discard(ahead)
            raise
        if ahead is not None:
            try:
                self._prefetched = flat_entries(await ahead)
            except ResponseError:  # e.g. NOGROUP: the next plain read sorts it out
                pass
            except (RedisConnectionError, RedisTimeoutError, OSError):
                self._own_pending = True  # it may have been served: read our pending entries first
                raise
        self.totals.add(counters)
        return counters

    async def process(self, found: list[Entry], *, claimed: int = 0) -> Counters:
        batch = _Batch()
        batch.counters.claimed = claimed
        events: list[Event] = []
        for stream, entry_id, fields in found:
            batch.last_id = entry_id
            try:
                event = entries.decode(stream, entry_id, fields)
            except entries.Malformed as exc:
                self._fail(batch, None, stream, entry_id, fields, f"malformed entry: {exc}", 1)
                continue
            try:
                wanted = delivery.accepts(self.sub, event)
                if wanted and self.sub.transform is not None:
                    event = self.sub.transform(event)
            except Exception as exc:  # a broken filter/transform fails this event, not the consumer
                self._fail(batch, event, stream, entry_id, fields, f"filter/transform: {delivery.describe(exc)}", 1)
                continue
            if not wanted:
                batch.ack[stream].append(entry_id)
                batch.counters.skipped += 1
                continue
            events.append(event)
        if self.sub.batch:
            for start in range(0, len(events), self.sub.batch_size):
                chunk = events[start:start + self.sub.batch_size]
                self._settle(batch, chunk, await self._deliver(chunk))
        elif self.sub.concurrency == 1:  # in stream order, without a task per event
            for event in events:
                self._settle(batch, [event], await self._deliver(event))
        elif events:
            gate = asyncio.Semaphore(self.sub.concurrency)

            async def one(event: Event) -> Outcome | None:
                async with gate:
                    return await self._deliver(event)

            outcomes = await asyncio.gather(*(one(e) for e in events))
            for event, outcome in zip(events, outcomes, strict=True):
                self._settle(batch, [event], outcome)
        await self._commit(batch)
        return batch.counters

    async def _deliver(self, target: Event | list[Event]) -> Outcome | None:
        """Deliver, waiting out TransientErrors; None when stopped during an outage (left pending)."""
        while True:
            try:
                outcome = await delivery.deliver(self.sub, target)
                self._transient_ms = 0
                return outcome
            except TransientError as exc:
                self._transient_ms = min(max(self._transient_ms * 2, 100), settings.CB_BUS_TRANSIENT_BACKOFF_MAX_MS)
                log.warning("%s: %s; retrying in %d ms", self.sub.name, exc, self._transient_ms)
                self.totals.transient += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self._transient_ms / 1000)
                if self.stop.is_set():
                    return None

    def _settle(self, batch: _Batch, events: list[Event], outcome: Outcome | None) -> None:
        if outcome is None:
            return  # stays pending; claimed later by another consumer or read again on restart
        batch.counters.retried += outcome.retried * len(events)
        if outcome.ok:
            batch.counters.processed += len(events)
            for event in events:
                batch.ack[event.stream].append(event.entry_id)
            return
        for event in events:
            self._fail(batch, event, event.stream, event.entry_id, event.fields, outcome.error or "failed",
                       outcome.attempts)

    def _fail(self, batch: _Batch, event: Event | None, stream: str, entry_id: str, fields: dict[str, str],
              reason: str, attempts: int) -> None:
        batch.counters.failed += 1
        batch.ack[stream].append(entry_id)
        if self.sub.use_dlq:
            key = self.sub.dead_letter_key(event) if event else keys.dlq(keys.stream_type(stream) or "unknown")
            batch.dead.append((key, dead_letter_fields(self.sub, event, stream, entry_id, fields, reason, attempts)))
            batch.counters.dead_lettered += 1
        else:
            log.error("%s dropped entry %s of %s after %d attempts: %s", self.sub.name, entry_id, stream,
                      attempts, reason)

    async def _commit(self, batch: _Batch) -> None:
        """Dead letters, acks and counters in one MULTI: a dead letter exists iff its entry is acked.
        Sent down the loop's multiplexed connection (core/redis_mux.py) as one run of commands, so
        nothing of another caller comes between MULTI and EXEC."""
        c = batch.counters
        if not batch.ack and not batch.dead and not (c.retried or c.claimed):
            return
        group, metrics = self.sub.group, keys.consumer_metrics(self.sub.group)
        commands: list[tuple[Any, ...]] = [("MULTI",)]
        for key, fields in batch.dead:
            commands.append(("XADD", key, "MAXLEN", "~", settings.CB_DLQ_MAXLEN, "*",
                             *(part for item in fields.items() for part in item)))
            commands.append(("EXPIRE", key, settings.CB_DLQ_TTL_S))
        for stream, ids in batch.ack.items():
            commands.append(("XACK", stream, group, *ids))
        for name, value in (("processed", c.processed), ("failed", c.failed), ("retried", c.retried),
                            ("deadLettered", c.dead_lettered), ("skipped", c.skipped), ("claimed", c.claimed)):
            if value:
                commands.append(("HINCRBY", metrics, name, value))
        if batch.last_id:
            commands.append(("HSET", metrics, "lastId", batch.last_id))
        commands.append(("EXEC",))
        replies = await redis_mux.of(get_redis()).execute_many(commands)
        for reply in replies:  # a lost connection, EXECABORT, or an error inside the transaction
            if isinstance(reply, Exception):
                raise reply
        for reply in replies[-1]:
            if isinstance(reply, Exception):
                raise reply

    async def run(self) -> None:
        """Rounds until stop; a lost Redis connection is retried with a short pause."""
        while not self.stop.is_set() or self._prefetched:  # prefetched entries are ours: finish them
            try:
                await self.round()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("%s: redis unavailable (%s); retrying", self.sub.name, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1.0)
