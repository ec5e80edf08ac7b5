"""Durable subscriptions: what `subscribe()` records and `consume_streams` runs (SPEC §4.7, §14.4).

A subscription is a function bound to event-type patterns. On the Redis bus it is one consumer
group (every subscription sees every matching event once; the copies of `consume_streams` share a
group's work); on the memory bus it is called in-process. Delivery is at-least-once: a handler may
see an event again after a crash, so its effects should be idempotent (events.idempotency).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from claudebench.core import keys
from events import patterns as pat
from events.types import Event

EventHandler = Callable[[Event], Awaitable[Any]]
BatchHandler = Callable[[list[Event]], Awaitable[Any]]
NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


@functools.lru_cache(maxsize=4096)
def _wanted(patterns: tuple[str, ...], event_type: str) -> bool:
    """Whether a subscription's patterns take a type, remembered: a consumer asks for every
    entry it reads, about the same few types (the match was 11% of consume_streams' time)."""
    return pat.any_match(patterns, event_type)


@dataclass(frozen=True)
class Subscription:
    name: str
    patterns: tuple[str, ...]
    handler: Callable[..., Awaitable[Any]]
    group: str
    batch: bool = False  # handler takes list[Event]
    batch_size: int = 100
    batch_timeout_ms: int = 1000
    concurrency: int = 1
    max_retries: int = 3  # deliveries tried in all before dead-lettering (SPEC §4.7: 3 attempts)
    retry_delay_ms: int = 1000
    backoff: str = "exponential"  # or "fixed"
    use_dlq: bool = False
    dlq_type: str | None = None  # dead letters go to cb:dlq:{dlq_type or the event's type}
    filter: Callable[[Event], bool] | None = None
    transform: Callable[[Event], Event] | None = None
    include_requests: bool = False  # request records (metadata.kind == "request") too
    sources: tuple[str, ...] = (keys.STREAM_PATTERN,)  # key patterns of the streams it reads

    def wants_type(self, event_type: str) -> bool:
        return _wanted(self.patterns, event_type)

    def wants_stream(self, stream: str) -> bool:
        """cb:stream:{type} by its type (never cb:stream:session:*), cb:audit:* if a source."""
        if stream.startswith(keys.SESSION_STREAM_PREFIX):
            return False
        event_type = keys.stream_type(stream)
        if event_type is not None:
            return keys.STREAM_PATTERN in self.sources and self.wants_type(event_type)
        return any(stream.startswith(src[:-1]) for src in self.sources if src.endswith("*")
                   and src != keys.STREAM_PATTERN) or stream in self.sources

    def delay_ms(self, attempt: int) -> int:
        """Wait before attempt `attempt + 1`: base × 2^(attempt−1) when exponential."""
        if self.backoff == "exponential":
            return self.retry_delay_ms * 2 ** (attempt - 1)
        return self.retry_delay_ms

    def dead_letter_key(self, event: Event) -> str:
        return keys.dlq(self.dlq_type or event.type)


_SUBSCRIPTIONS: dict[str, Subscription] = {}
_loaded = False


def _as_patterns(patterns: str | Iterable[str]) -> tuple[str, ...]:
    found = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    if not found:
        raise ValueError("subscribe needs at least one event type or pattern")
    for p in found:
        if not isinstance(p, str) or not pat.valid(p):
            raise ValueError(f"invalid event pattern {p!r}: use a type, '*' or 'prefix.*'")
    return found


def build(
    patterns: str | Iterable[str], handler: Callable[..., Awaitable[Any]], *, name: str | None = None,
    group: str | None = None, batch: bool = False, batch_size: int = 100, batch_timeout_ms: int = 1000,
    concurrency: int = 1, max_retries: int | None = None, retry_delay_ms: int | None = None,
    backoff: str = "exponential", use_dlq: bool | None = None, dlq_type: str | None = None,
    filter: Callable[[Event], bool] | None = None, transform: Callable[[Event], Event] | None = None,
    include_requests: bool = False, sources: Iterable[str] = (keys.STREAM_PATTERN,),
) -> Subscription:
    """Check the options and make a Subscription (not registered)."""
    # The default name (and so the consumer group) must be the same in every process and restart.
    default = f"{getattr(handler, '__module__', 'sub')}.{getattr(handler, '__qualname__', 'handler')}"
    name = name or re.sub(r"[^A-Za-z0-9_.:-]", "_", default)
    if not NAME.match(name):
        raise ValueError(f"invalid subscription name {name!r}")
    if backoff not in ("exponential", "fixed"):
        raise ValueError("backoff must be 'exponential' or 'fixed'")
    if concurrency < 1 or batch_size < 1 or batch_timeout_ms < 0:
        raise ValueError("concurrency and batch_size must be ≥ 1, batch_timeout_ms ≥ 0")
    retries = settings.EVENT_BUS_DEFAULT_MAX_RETRIES if max_retries is None else max_retries
    if retries < 1:
        raise ValueError("max_retries must be ≥ 1")
    return Subscription(
        name=name, patterns=_as_patterns(patterns), handler=handler, group=group or f"cb:{name}",
        batch=batch, batch_size=batch_size, batch_timeout_ms=batch_timeout_ms, concurrency=concurrency,
        max_retries=retries,
        retry_delay_ms=settings.CB_BUS_RETRY_DELAY_MS if retry_delay_ms is None else retry_delay_ms,
        backoff=backoff, use_dlq=settings.EVENT_BUS_DEFAULT_USE_DLQ if use_dlq is None else use_dlq,
        dlq_type=dlq_type, filter=filter, transform=transform, include_requests=include_requests,
        sources=tuple(sources),
    )


def register(sub: Subscription) -> str:
    existing = _SUBSCRIPTIONS.get(sub.name)
    if existing is not None and existing.handler is not sub.handler:
        raise ValueError(f"subscription {sub.name} registered twice")
    _SUBSCRIPTIONS[sub.name] = sub
    return sub.name


def unregister(name: str) -> bool:
    return _SUBSCRIPTIONS.pop(name, None) is not None


def durable(patterns: str | Iterable[str], **options: Any) -> Callable:
    """Decorator form of subscribe for modules listed in CB_SUBSCRIPTION_MODULES."""

    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        register(build(patterns, fn, **options))
        return fn

    return wrap


def load() -> None:
    """Import the modules that declare subscriptions (idempotent)."""
    global _loaded
    if _loaded:
        return
    for module in settings.CB_SUBSCRIPTION_MODULES:
        importlib.import_module(module)
    _loaded = True


def all() -> list[Subscription]:
    load()
    return list(_SUBSCRIPTIONS.values())


def get(name: str) -> Subscription | None:
    load()
    return _SUBSCRIPTIONS.get(name)
