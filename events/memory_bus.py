"""The in-memory adapter (SPEC §14.2/§14.4): the same API as RedisBus, inside one process.

For unit tests and single-process use. Publishing keeps a bounded history (for replay, recent and
correlation queries) and hands each event to every matching subscription's queue; each
subscription has `concurrency` workers that deliver with the same retries, backoff and dead
letters as the Redis consumer. `drain()` waits until every queue is empty.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import defaultdict, deque
from typing import Any

from django.conf import settings

from claudebench.core import bus as core_bus
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.errors import HandlerError
from events import delivery, patterns, subscriptions
from events.subscriptions import Subscription
from events.types import Event, TransientError

_COUNTERS = ("processed", "failed", "retried", "deadLettered", "skipped", "requeued")


class MemoryBus:
    adapter = "memory"

    def __init__(self, max_history: int | None = None) -> None:
        self.history: deque[Event] = deque(maxlen=max_history or settings.EVENT_BUS_MEMORY_MAX_HISTORY)
        self._seen: deque[str] = deque(maxlen=self.history.maxlen * 10)
        self._seen_set: set[str] = set()
        self._subs: dict[str, Subscription] = {}
        self._queues: dict[str, asyncio.Queue] = {}
        self._workers: dict[str, list[asyncio.Task]] = {}
        self._dead: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._counters: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNTERS, 0))
        self._seq = itertools.count(1)
        self.published = 0

    # --- publishing --------------------------------------------------------------------------------
    async def publish(self, event_type: str, payload: Any, metadata: dict[str, Any] | None = None, *,
                      id: str | None = None, correlation_id: str | None = None,
                      causation_id: str | None = None, partition_key: str | None = None,
                      wait: bool = False) -> str:
        """Stored in the history and handed to the subscriptions' queues before it returns, so
        `wait` (accepted for RedisBus's signature) changes nothing."""
        md = dict(metadata or {})
        if correlation_id is not None:
            md["correlationId"] = correlation_id
        if causation_id is not None:
            md["causationId"] = causation_id
        if partition_key is not None:
            md["partitionKey"] = partition_key
        env = core_bus.envelope(event_type, payload, md or None, id=id)
        if env["id"] in self._seen_set:
            return env["id"]  # exactly-once gate, as on Redis (SPEC §4.2 step 2)
        self._remember(env["id"])
        entry_id = f"{env['timestamp']}-{next(self._seq)}"
        event = Event(id=env["id"], type=event_type, payload=payload, metadata=md, timestamp=env["timestamp"],
                      stream=f"memory:{event_type}", entry_id=entry_id)
        self.history.append(event)
        self.published += 1
        for sub in self._subs.values():
            self._offer(sub, event)
        return env["id"]

    async def publish_batch(self, events: list[dict[str, Any]], *, wait: bool = False) -> list[str]:
        return [await self.publish(e["type"], e.get("payload"), e.get("metadata"), id=e.get("id"),
                                   correlation_id=e.get("correlationId")) for e in events]

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Every publish is stored when it returns (RedisBus buffers; this has nothing to wait
        for). Deliveries to subscribers are another matter: `drain()` waits for those."""
        return True

    def _remember(self, event_id: str) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(event_id)
        self._seen_set.add(event_id)

    def _offer(self, sub: Subscription, event: Event) -> None:
        copy = Event(**{**event.__dict__, "metadata": dict(event.metadata)})
        try:
            if not delivery.accepts(sub, copy):
                self._counters[sub.group]["skipped"] += 1
                return
            copy = sub.transform(copy) if sub.transform else copy
        except Exception as exc:  # publishing never fails because of a subscriber (SPEC §14.4)
            self._counters[sub.group]["failed"] += 1
            if sub.use_dlq:
                self._dead_letter(sub, copy, f"filter/transform: {delivery.describe(exc)}", 1)
            return
        self._queues[sub.name].put_nowait(copy)

    # --- subscribing -------------------------------------------------------------------------------
    def subscribe(self, patterns_: Any, handler: Any, **options: Any) -> str:
        sub = subscriptions.build(patterns_, handler, **options)
        if sub.name in self._subs:  # the same function subscribed again: a subscription of its own
            sub = dataclasses.replace(sub, name=f"{sub.name}#{next(self._seq)}")
        self._subs[sub.name] = sub
        self._queues[sub.name] = asyncio.Queue()
        self._workers[sub.name] = [asyncio.get_running_loop().create_task(self._work(sub))
                                   for _ in range(1 if sub.batch else sub.concurrency)]
        return sub.name

    def subscribe_batch(self, patterns_: Any, handler: Any, *, batch_size: int = 100,
                        batch_timeout_ms: int = 1000, **options: Any) -> str:
        return self.subscribe(patterns_, handler, batch=True, batch_size=batch_size,
                              batch_timeout_ms=batch_timeout_ms, **options)

    def unsubscribe(self, subscription_id: str) -> bool:
        sub = self._subs.pop(subscription_id, None)
        for task in self._workers.pop(subscription_id, []):
            task.cancel()
        self._queues.pop(subscription_id, None)
        return sub is not None

    async def _take(self, sub: Subscription, queue: asyncio.Queue) -> list[Event]:
        taken = [await queue.get()]
        if sub.batch:
            deadline = asyncio.get_running_loop().time() + sub.batch_timeout_ms / 1000
            while len(taken) < sub.batch_size:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    taken.append(await asyncio.wait_for(queue.get(), left))
                except TimeoutError:
                    break
        return taken

    async def _work(self, sub: Subscription) -> None:
        queue = self._queues[sub.name]
        while True:
            taken = await self._take(sub, queue)
            try:
                target: Event | list[Event] = taken if sub.batch else taken[0]
                backoff = 0.1
                while True:
                    try:
                        outcome = await delivery.deliver(sub, target)
                        break
                    except TransientError:
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, settings.CB_BUS_TRANSIENT_BACKOFF_MAX_MS / 1000)
                counters = self._counters[sub.group]
                counters["retried"] += outcome.retried * len(taken)
                if outcome.ok:
                    counters["processed"] += len(taken)
                else:
                    counters["failed"] += len(taken)
                    if sub.use_dlq:
                        for event in taken:
                            self._dead_letter(sub, event, outcome.error or "failed", outcome.attempts)
            finally:
                for _ in taken:
                    queue.task_done()

    def _dead_letter(self, sub: Subscription, event: Event, reason: str, attempts: int) -> None:
        env = event.envelope()
        env["metadata"] = {**event.metadata, "failureReason": reason, "attempts": attempts,
                           "originalStreamId": event.entry_id, "subscription": sub.name, "group": sub.group,
                           "failedAt": iso_ms(now_ms())}
        dlq_type = sub.dlq_type or event.type
        self._dead[dlq_type].append({"type": dlq_type, "dlqId": f"{now_ms()}-{next(self._seq)}", "envelope": env,
                                     "stream": event.stream, "entry": event.entry_id, "group": sub.group,
                                     "_event": event, "_sub": sub.name})
        self._counters[sub.group]["deadLettered"] += 1

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every subscription's queue is empty and its deliveries are finished."""
        async with asyncio.timeout(timeout_s):
            for queue in list(self._queues.values()):
                await queue.join()

    async def close(self) -> None:
        for name in list(self._subs):
            self.unsubscribe(name)

    # --- reading -----------------------------------------------------------------------------------
    def _matching(self, pattern: str, include_requests: bool = False) -> list[Event]:
        if not patterns.valid(pattern):
            raise ValueError(f"invalid event pattern {pattern!r}")
        return [e for e in self.history if patterns.matches(pattern, e.type)
                and (include_requests or e.kind != "request")]

    async def replay(self, pattern: str, *, after: str | None = None, since_ms: int | None = None,
                     until_ms: int | None = None, limit: int = 100, include_requests: bool = False) -> list[Event]:
        from events.redis_bus import id_key

        found = self._matching(pattern, include_requests)
        if after:
            found = [e for e in found if id_key(e.entry_id) > id_key(after)]
        if since_ms is not None:
            found = [e for e in found if e.timestamp >= since_ms]
        if until_ms is not None:
            found = [e for e in found if e.timestamp <= until_ms]
        return found[:limit]

    async def recent(self, pattern: str = "*", *, limit: int = 100, since_ms: int | None = None,
                     include_requests: bool = False) -> list[Event]:
        found = [e for e in self._matching(pattern, include_requests) if since_ms is None or e.timestamp >= since_ms]
        return list(reversed(found))[:limit]

    async def query_by_correlation(self, correlation_id: str, *, limit: int = 100, per_stream: int = 1000) -> list[Event]:
        return [e for e in self.history if e.correlation_id == correlation_id][:limit]

    # --- stats and dead letters --------------------------------------------------------------------
    async def group_stats(self) -> dict[str, dict[str, Any]]:
        out = {}
        for sub in self._subs.values():
            queue = self._queues[sub.name]
            out[sub.group] = {"group": sub.group, **self._counters[sub.group], "lastId": None,
                              "pending": queue.qsize(), "lag": queue.qsize(), "streams": 0}
        return out

    async def stats(self) -> dict[str, Any]:
        groups = await self.group_stats()
        return {"adapter": self.adapter, "isHealthy": True, "activeSubscriptions": len(self._subs),
                "publishedEvents": self.published, "failedEvents": sum(g["failed"] for g in groups.values()),
                "deadLettered": await self.dead_letter_count(), "groups": list(groups.values())}

    async def is_healthy(self) -> bool:
        return True

    async def dead_letter_count(self) -> int:
        return sum(len(rows) for rows in self._dead.values())

    async def dead_letters(self, event_type: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._dead.get(event_type, []) if event_type is not None else [
            r for rows in self._dead.values() for r in rows]
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        return list(reversed(public))[:limit]

    async def requeue(self, event_type: str, dlq_id: str) -> str:
        rows = self._dead.get(event_type, [])
        row = next((r for r in rows if r["dlqId"] == dlq_id), None)
        if row is None:
            raise HandlerError(f"Dead letter not found: {event_type} {dlq_id}")
        sub = self._subs.get(row["_sub"])
        if sub is None:
            raise HandlerError(f"Dead letter {dlq_id} cannot be requeued: its subscription is gone")
        rows.remove(row)
        event: Event = row["_event"]
        event.attempt = 1
        self._queues[sub.name].put_nowait(event)
        self._counters[sub.group]["requeued"] += 1
        return event.entry_id
