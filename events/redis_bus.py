"""The Redis adapter of the event bus: publish (SPEC §4.2 wire), replay and inspection over the
streams, per-group stats, dead letters (SPEC §4.7, §14.4). Subscriptions registered here are run
by `manage.py consume_streams` (events/consumer.py)."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import orjson
from django.conf import settings

from claudebench.core import keys
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.errors import HandlerError
from claudebench.core.redis import get_redis
from events import entries, outbox, patterns, subscriptions
from events.consumer import scan_streams
from events.types import Event

log = logging.getLogger("claudebench.events.bus")

def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def order_key(event: Event) -> tuple[int, int, int]:
    """Order across streams: entry id; two streams can hold the very same entry id (same Redis
    millisecond, sequence 0), and then the publisher's own timestamp decides."""
    ms, seq = id_key(event.entry_id)
    return ms, seq, event.timestamp


def _stream_keys(pattern: str, found: set[str]) -> list[str]:
    return sorted(s for s in found if not s.startswith(keys.SESSION_STREAM_PREFIX)
                  and patterns.matches(pattern, keys.stream_type(s) or ""))


class RedisBus:
    adapter = "redis"

    # --- publishing --------------------------------------------------------------------------------
    async def publish(self, event_type: str, payload: Any, metadata: dict[str, Any] | None = None, *,
                      id: str | None = None, correlation_id: str | None = None,
                      causation_id: str | None = None, partition_key: str | None = None,
                      wait: bool = False) -> str:
        """XADD + PUBLISH through the exactly-once gate (SPEC §4.2), buffered (events/outbox.py):
        returns the event id once the envelope is built and queued in this loop's outbox, which a
        writer task sends in pipelined batches. `wait=True` returns once the event is stored (and
        raises as core/bus.publish does); `flush()` waits for everything published so far."""
        if causation_id is not None:
            metadata = {**(metadata or {}), "causationId": causation_id}
        return await outbox.publish(event_type, payload, metadata, id=id, correlation_id=correlation_id,
                                    partition_key=partition_key, wait=wait)

    async def publish_batch(self, events: list[dict[str, Any]], *, wait: bool = False) -> list[str]:
        """Each item: {type, payload, metadata?, id?, correlationId?}, queued in order; with
        `wait=True` returns once all are stored (sent together)."""
        ids = [await self.publish(e["type"], e.get("payload"), e.get("metadata"), id=e.get("id"),
                                  correlation_id=e.get("correlationId")) for e in events]
        if wait:
            await self.flush()
        return ids

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything this loop published is stored (or failed for good); False when
        `timeout_s` ran out first."""
        return await outbox.flush(timeout_s)

    # --- subscribing (run by consume_streams) ------------------------------------------------------
    def subscribe(self, patterns_: Any, handler: Any, **options: Any) -> str:
        return subscriptions.register(subscriptions.build(patterns_, handler, **options))

    def subscribe_batch(self, patterns_: Any, handler: Any, *, batch_size: int = 100,
                        batch_timeout_ms: int = 1000, **options: Any) -> str:
        return self.subscribe(patterns_, handler, batch=True, batch_size=batch_size,
                              batch_timeout_ms=batch_timeout_ms, **options)

    def unsubscribe(self, subscription_id: str) -> bool:
        return subscriptions.unregister(subscription_id)

    # --- reading the streams -----------------------------------------------------------------------
    async def _streams(self, pattern: str) -> list[str]:
        if not patterns.valid(pattern):
            raise ValueError(f"invalid event pattern {pattern!r}")
        if patterns.exact_types([pattern]):
            return [keys.stream(pattern)]
        return _stream_keys(pattern, await scan_streams(get_redis(), (keys.STREAM_PATTERN,)))

    async def replay(self, pattern: str, *, after: str | None = None, since_ms: int | None = None,
                     until_ms: int | None = None, limit: int = 100, include_requests: bool = False) -> list[Event]:
        """Events of matching streams in stream order, after entry id `after` (exclusive) or from
        `since_ms`, up to `until_ms` (inclusive)."""
        low = f"({after}" if after else (str(since_ms) if since_ms is not None else "-")
        high = str(until_ms) if until_ms is not None else "+"
        found: list[Event] = []
        r = get_redis()
        for stream in await self._streams(pattern):
            start = low
            taken: list[Event] = []
            while len(taken) < limit:
                page = await r.xrange(stream, min=start, max=high, count=limit)
                if not page:
                    break
                for entry_id, fields in page:
                    event = self._decode(stream, entry_id, fields)
                    if event is not None and (include_requests or event.kind != "request"):
                        taken.append(event)
                start = f"({page[-1][0]}"
                if len(page) < limit:
                    break
            found += taken[:limit]
        found.sort(key=order_key)
        return found[:limit]

    async def recent(self, pattern: str = "*", *, limit: int = 100, since_ms: int | None = None,
                     include_requests: bool = False) -> list[Event]:
        """Newest first across matching streams (SPEC §14.1 getRecentEvents)."""
        low = str(since_ms) if since_ms is not None else "-"
        streams = await self._streams(pattern)
        async with get_redis().pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xrevrange(stream, max="+", min=low, count=limit * (1 if include_requests else 4))
            pages = await pipe.execute()
        found = [e for stream, page in zip(streams, pages, strict=True) for entry_id, fields in page
                 if (e := self._decode(stream, entry_id, fields)) is not None
                 and (include_requests or e.kind != "request")]
        found.sort(key=order_key, reverse=True)
        return found[:limit]

    async def query_by_correlation(self, correlation_id: str, *, limit: int = 100,
                                   per_stream: int = 1000) -> list[Event]:
        """Events whose metadata.correlationId matches, oldest first, from the newest `per_stream`
        entries of every stream (request records included: they carry it too)."""
        streams = await self._streams("*")
        async with get_redis().pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xrevrange(stream, count=per_stream)
            pages = await pipe.execute()
        found = [e for stream, page in zip(streams, pages, strict=True) for entry_id, fields in page
                 if (e := self._decode(stream, entry_id, fields)) is not None and e.correlation_id == correlation_id]
        found.sort(key=order_key)
        return found[:limit]

    @staticmethod
    def _decode(stream: str, entry_id: str, fields: dict[str, str]) -> Event | None:
        try:
            return entries.decode(stream, entry_id, fields)
        except entries.Malformed:
            return None

    # --- stats -------------------------------------------------------------------------------------
    async def group_stats(self) -> dict[str, dict[str, Any]]:
        """Per consumer group: counters of cb:metrics:consumer:{group}, plus pending and lag summed
        over its streams (XINFO GROUPS)."""
        r = get_redis()
        streams = sorted(s for s in await scan_streams(r, (keys.STREAM_PATTERN, keys.AUDIT_PATTERN))
                         if not s.startswith(keys.SESSION_STREAM_PREFIX))
        async with r.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_groups(stream)
            infos = await pipe.execute(raise_on_error=False)
        groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"pending": 0, "lag": 0, "streams": 0})
        for info in infos:
            if isinstance(info, Exception):
                continue
            for g in info:
                row = groups[g["name"]]
                row["pending"] += int(g.get("pending") or 0)
                row["lag"] += int(g.get("lag") or 0)
                row["streams"] += 1
        for sub in subscriptions.all():
            groups[sub.group]  # registered groups appear even before their first stream
        async with r.pipeline(transaction=False) as pipe:
            names = sorted(groups)
            for name in names:
                pipe.hgetall(keys.consumer_metrics(name))
            hashes = await pipe.execute()
        out = {}
        for name, counters in zip(names, hashes, strict=True):
            row = {"group": name, "processed": 0, "failed": 0, "retried": 0, "deadLettered": 0, "skipped": 0,
                   "claimed": 0, "requeued": 0, "lastId": None, **groups[name]}
            for field, value in counters.items():
                row[field] = value if field == "lastId" else int(value)
            out[name] = row
        return out

    async def stats(self) -> dict[str, Any]:
        groups = await self.group_stats()
        dead = await self.dead_letter_count()
        return {
            "adapter": self.adapter, "isHealthy": await self.is_healthy(),
            "activeSubscriptions": len(subscriptions.all()),
            "failedEvents": sum(g["failed"] for g in groups.values()),
            "deadLettered": dead,
            "groups": list(groups.values()),
            "outbox": outbox.stats(),
        }

    async def is_healthy(self) -> bool:
        try:
            return bool(await get_redis().ping())
        except Exception:  # any failure to reach Redis means unhealthy
            return False

    # --- dead letters ------------------------------------------------------------------------------
    async def dead_letter_count(self) -> int:
        r = get_redis()
        total = 0
        async for key in r.scan_iter(match=keys.DLQ_PATTERN, count=1000, _type="stream"):
            total += await r.xlen(key)
        return total

    async def dead_letters(self, event_type: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first: {type, dlqId, envelope, stream, entry, group}."""
        r = get_redis()
        if event_type is not None:
            dlq_keys = [keys.dlq(event_type)]
        else:
            dlq_keys = sorted([k async for k in r.scan_iter(match=keys.DLQ_PATTERN, count=1000, _type="stream")])
        found = []
        for key in dlq_keys:
            for dlq_id, fields in await r.xrevrange(key, count=limit):
                found.append(dead_letter_row(key, dlq_id, fields))
        found.sort(key=lambda row: id_key(row["dlqId"]), reverse=True)
        return found[:limit]

    async def requeue(self, event_type: str, dlq_id: str) -> str:
        """Put a dead letter back on its stream for its own group only; returns the new entry id."""
        r = get_redis()
        key = keys.dlq(event_type)
        found = await r.xrange(key, min=dlq_id, max=dlq_id)
        if not found:
            raise HandlerError(f"Dead letter not found: {event_type} {dlq_id}")
        fields = found[0][1]
        stream, group = fields.get("stream"), fields.get("group")
        if not stream or not group or "fields" not in fields:
            raise HandlerError(f"Dead letter {dlq_id} cannot be requeued: its origin is unknown")
        entry = requeued_fields(orjson.loads(fields["fields"]), group)
        async with r.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, entry, maxlen=settings.CB_STREAM_MAXLEN, approximate=True)
            pipe.xdel(key, dlq_id)
            pipe.hincrby(keys.consumer_metrics(group), "requeued", 1)
            new_id, _, _ = await pipe.execute()
        return new_id


def dead_letter_row(key: str, dlq_id: str, fields: dict[str, str]) -> dict[str, Any]:
    try:
        env = orjson.loads(fields.get("data", "null"))
    except orjson.JSONDecodeError:
        env = None
    return {"type": keys.dlq_type(key), "dlqId": dlq_id, "envelope": env, "stream": fields.get("stream"),
            "entry": fields.get("entry"), "group": fields.get("group")}


def requeued_fields(original: dict[str, str], group: str) -> dict[str, str]:
    """The original entry, marked for `group` (other groups acknowledge it without delivering)."""
    entry = dict(original)
    if "data" in entry:
        env = orjson.loads(entry["data"])
        md = env.get("metadata") if isinstance(env.get("metadata"), dict) else {}
        env["metadata"] = {**md, "requeuedFor": group, "requeuedAt": iso_ms(now_ms())}
        entry["data"] = orjson.dumps(env).decode()
    else:
        entry["requeuedFor"] = group
    return entry
