"""What a subscriber receives: one event with where it came from (SPEC §4.1 envelope + stream)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Event:
    """An envelope as delivered: SPEC §4.1 fields, plus its stream entry and delivery attempt.

    `kind` is "event" (a published domain event), "request" (a handler's request record,
    metadata.kind == "request") or "audit" (an entry of a cb:audit:* stream, SPEC §3.6).
    """

    id: str
    type: str
    payload: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: int = 0
    stream: str = ""
    entry_id: str = ""
    kind: str = "event"
    attempt: int = 1
    fields: dict[str, str] = field(default_factory=dict)  # the raw stream entry

    @property
    def correlation_id(self) -> str | None:
        value = self.metadata.get("correlationId")
        return value if isinstance(value, str) else None

    @property
    def causation_id(self) -> str | None:
        value = self.metadata.get("causationId")
        return value if isinstance(value, str) else None

    def envelope(self) -> dict[str, Any]:
        env: dict[str, Any] = {"id": self.id, "type": self.type, "payload": self.payload}
        if self.metadata:
            env["metadata"] = self.metadata
        env["timestamp"] = self.timestamp
        return env

    def caused(self) -> dict[str, Any]:
        """Metadata for an event published because of this one: same correlation, causation = this id."""
        out: dict[str, Any] = {"causationId": self.id}
        if self.correlation_id:
            out["correlationId"] = self.correlation_id
        return out


class TransientError(Exception):
    """Raised by a subscriber when a dependency is down (e.g. PostgreSQL).

    The delivery is neither counted as a failed attempt nor dead-lettered: the entry stays pending
    and the subscription backs off and tries again until it succeeds or the consumer stops.
    """
