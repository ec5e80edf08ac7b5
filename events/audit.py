"""The audit drain (issue 4 item 6): the first durable subscription.

Every entry of cb:stream:* (domain events and request records; never cb:stream:session:*) and of
the audit streams cb:audit:* goes into the AuditEvent table, many rows per INSERT, acknowledged
only after the insert committed, idempotent on the event id. When PostgreSQL is unreachable the
subscriber raises TransientError: nothing is acknowledged, the consumer backs off and retries, so
an outage delays the audit trail but loses nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import psycopg_pool

from claudebench.core import keys, pg
from claudebench.core.clock import dt_from_ms
from events import entries
from events.idempotency import pg_insert_once
from events.models import AuditEvent
from events.subscriptions import durable
from events.types import Event, TransientError

NAME = "audit"


def _storable(value: Any) -> Any:
    """jsonb refuses U+0000 inside strings: replace it (rare; checked on the serialised form first)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _json(value: Any) -> Any:
    return _storable(value) if b"\\u0000" in orjson.dumps(value) else value


def audit_row(event: Event) -> dict[str, Any]:
    fields = event.payload if event.kind == "audit" and isinstance(event.payload, dict) else {}
    result = fields.get("result") or fields.get("decision") or ""  # hook decisions: allowed / blocked
    return {
        "event_id": _storable(event.id), "kind": event.kind, "event_type": _storable(event.type),
        "actor": _storable(entries.actor_of(event)), "correlation_id": _storable(event.correlation_id),
        "result": _storable(result) if isinstance(result, str) else "", "stream": _storable(event.stream),
        "entry_id": event.entry_id, "payload": _json(event.payload), "metadata": _json(event.metadata) or None,
        "occurred_at": dt_from_ms(event.timestamp),
    }


@durable("*", name=NAME, group="cb:audit-drain", batch=True, batch_size=500, batch_timeout_ms=200,
         include_requests=True, use_dlq=True, sources=(keys.STREAM_PATTERN, keys.AUDIT_PATTERN))
async def drain_to_postgres(events: list[Event]) -> None:
    """Insert the batch into AuditEvent; a duplicate event id is skipped (redelivery after a crash)."""
    try:
        await pg_insert_once(AuditEvent, (audit_row(e) for e in events), unique=("event_id",))
    except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
        await pg.close_pool()  # start the next attempt with fresh connections, not the pool's backoff
        raise TransientError(f"PostgreSQL unavailable: {exc.__class__.__name__}") from exc
