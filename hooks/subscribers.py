"""The session state processor as a durable subscription (SPEC §4.7, §10.9), run by
`manage.py consume_streams`: one consumer group, so each hook.*.executed event is recorded once per
cluster, retried with backoff when PostgreSQL or Redis hiccups, dead-lettered after that."""

from __future__ import annotations

from events.subscriptions import durable
from events.types import Event
from hooks import sessions


def _executed(event: Event) -> bool:
    return event.type.endswith(".executed")


@durable("hook.*", name="hooks-session-state", group="cb:hooks-session-state", filter=_executed, use_dlq=True)
async def record_session_event(event: Event) -> None:
    """Record one hook event in its session (stream, context, SessionEvent/SessionState, HookAudit)."""
    await sessions.record_hook_event(event.type, event.envelope())
