"""Input and output models of the events.* handlers (replay, inspection, dead letters)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from claudebench.core.schema import Out, Schema, opt
from events import patterns
from events.types import Event

ENTRY_ID = r"^\d{1,20}-\d{1,20}$"


def _pattern(value: str) -> str:
    if not patterns.valid(value):
        raise ValueError("must be an event type, '*' or 'prefix.*'")
    return value


class EventsReplayIn(Schema):
    pattern: str = Field(min_length=1, max_length=200)
    after: str | None = Field(None, pattern=ENTRY_ID)
    since: int | None = Field(None, ge=0, le=2**53)
    until: int | None = Field(None, ge=0, le=2**53)
    limit: int = Field(100, ge=1, le=1000)
    include_requests: bool = False

    _check_pattern = field_validator("pattern")(_pattern)


class EventsRecentIn(Schema):
    pattern: str = Field("*", min_length=1, max_length=200)
    since: int | None = Field(None, ge=0, le=2**53)
    limit: int = Field(100, ge=1, le=1000)
    include_requests: bool = False

    _check_pattern = field_validator("pattern")(_pattern)


class EventsCorrelationIn(Schema):
    correlation_id: str = Field(min_length=1, max_length=200)
    limit: int = Field(100, ge=1, le=1000)


class EventOut(Out):
    id: str
    type: str
    payload: Any = None
    metadata: dict[str, Any] | None = opt()
    timestamp: int
    stream_id: str = Field(alias="streamId")

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(id=event.id, type=event.type, payload=event.payload, metadata=event.metadata or None,
                   timestamp=event.timestamp, stream_id=event.entry_id)


class EventsListOut(Out):
    events: list[EventOut]
    count: int


class GroupStats(Out):
    group: str
    processed: int
    failed: int
    retried: int
    dead_lettered: int = Field(alias="deadLettered")
    skipped: int
    claimed: int = 0
    requeued: int = 0
    pending: int
    lag: int
    streams: int
    last_id: str | None = opt(alias="lastId")


class EventsStatsOut(Out):
    adapter: str
    is_healthy: bool = Field(alias="isHealthy")
    active_subscriptions: int = Field(alias="activeSubscriptions")
    published_events: int | None = opt(alias="publishedEvents")
    failed_events: int = Field(alias="failedEvents")
    dead_lettered: int = Field(alias="deadLettered")
    groups: list[GroupStats]


class EventsDeadLettersIn(Schema):
    type: str | None = Field(None, min_length=1, max_length=200)
    limit: int = Field(100, ge=1, le=1000)


class DeadLetterOut(Out):
    type: str
    dlq_id: str = Field(alias="dlqId")
    envelope: dict[str, Any] | None = None
    stream: str | None = opt()
    entry: str | None = opt()
    group: str | None = opt()


class EventsDeadLettersOut(Out):
    dead_letters: list[DeadLetterOut] = Field(alias="deadLetters")
    count: int


class EventsRequeueIn(Schema):
    type: str = Field(min_length=1, max_length=200)
    id: str = Field(pattern=ENTRY_ID)


class EventsRequeueOut(Out):
    requeued: bool
    type: str
    id: str
    entry_id: str = Field(alias="entryId")
