"""events.* handlers: replay and inspection of the bus, consumer stats, dead letters (SPEC §14.4)."""

from __future__ import annotations

from claudebench.core.pipeline import Ctx
from claudebench.core.registry import Limits, Mcp, handler
from claudebench.core.schema import Empty
from events.bus import get_bus
from events.schemas import (
    DeadLetterOut,
    EventOut,
    EventsCorrelationIn,
    EventsDeadLettersIn,
    EventsDeadLettersOut,
    EventsListOut,
    EventsRecentIn,
    EventsReplayIn,
    EventsRequeueIn,
    EventsRequeueOut,
    EventsStatsOut,
)

_READ = Limits(rate=100, timeout_ms=10_000)


def _listed(found) -> EventsListOut:
    return EventsListOut(events=[EventOut.of(e) for e in found], count=len(found))


@handler("events.replay", input=EventsReplayIn, output=EventsListOut, mutating=False, limits=_READ,
         mcp=Mcp(title="Replay events", tags=("events",)))
async def events_replay(ctx: Ctx, data: EventsReplayIn) -> EventsListOut:
    """Events of one type or pattern in stream order, after a stream entry id or from a time (ms)."""
    return _listed(await get_bus().replay(data.pattern, after=data.after, since_ms=data.since,
                                          until_ms=data.until, limit=data.limit,
                                          include_requests=data.include_requests))


@handler("events.recent", input=EventsRecentIn, output=EventsListOut, mutating=False, limits=_READ,
         mcp=Mcp(title="Recent events", tags=("events",)))
async def events_recent(ctx: Ctx, data: EventsRecentIn) -> EventsListOut:
    """The newest events matching a pattern, newest first."""
    return _listed(await get_bus().recent(data.pattern, limit=data.limit, since_ms=data.since,
                                          include_requests=data.include_requests))


@handler("events.correlation", input=EventsCorrelationIn, output=EventsListOut, mutating=False, limits=_READ,
         mcp=Mcp(title="Events by correlation id", tags=("events",)))
async def events_correlation(ctx: Ctx, data: EventsCorrelationIn) -> EventsListOut:
    """Events and request records carrying one correlation id, oldest first."""
    return _listed(await get_bus().query_by_correlation(data.correlation_id, limit=data.limit))


@handler("events.stats", input=Empty, output=EventsStatsOut, mutating=False, limits=_READ,
         mcp=Mcp(title="Event bus stats", tags=("events",)))
async def events_stats(ctx: Ctx, data: Empty) -> EventsStatsOut:
    """Bus health and per-subscription counters: processed, failed, retried, dead-lettered, lag, pending."""
    return EventsStatsOut.model_validate(await get_bus().stats())


@handler("events.dead_letters", input=EventsDeadLettersIn, output=EventsDeadLettersOut, mutating=False,
         limits=_READ, mcp=Mcp(title="Dead letters", tags=("events",)))
async def events_dead_letters(ctx: Ctx, data: EventsDeadLettersIn) -> EventsDeadLettersOut:
    """Dead-lettered deliveries, newest first, of one event type or all."""
    rows = await get_bus().dead_letters(data.type, limit=data.limit)
    return EventsDeadLettersOut(dead_letters=[DeadLetterOut.model_validate(r) for r in rows], count=len(rows))


@handler("events.requeue", input=EventsRequeueIn, output=EventsRequeueOut, limits=Limits(rate=100, timeout_ms=5_000),
         mcp=Mcp(title="Requeue a dead letter", tags=("events",)))
async def events_requeue(ctx: Ctx, data: EventsRequeueIn) -> EventsRequeueOut:
    """Deliver a dead letter again, to the subscription that failed it only."""
    entry_id = await get_bus().requeue(data.type, data.id)
    return EventsRequeueOut(requeued=True, type=data.type, id=data.id, entry_id=entry_id)
