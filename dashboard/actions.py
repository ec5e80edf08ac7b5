"""Operator actions (admin and API): each runs the same handlers as every other transport,
through the full pipeline (validation, limits, breaker, audit, events), from sync Django code."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from claudebench.core import pipeline
from claudebench.core.clock import now_ms
from claudebench.core.pipeline import CallMeta


def call(event: str, params: dict[str, Any], *, operator: str) -> dict[str, Any]:
    """One handler call on behalf of an operator (the actor of its audit entry and rate limit)."""
    meta = CallMeta(transport="admin", client_id=f"operator:{operator}")
    return async_to_sync(pipeline.call)(event, params, meta)


def task_requeue(*, task_id: str, status: str, assigned_to: str | None, operator: str) -> None:
    """Back to the pending queue: unassigned (task.unassign) and pending again (task.update)."""
    if assigned_to:
        call("task.unassign", {"taskId": task_id}, operator=operator)
    if status != "pending":
        call("task.update", {"id": task_id, "updates": {"status": "pending"}}, operator=operator)


def task_reassign(*, task_id: str, instance_id: str, operator: str) -> dict[str, Any]:
    return call("task.assign", {"taskId": task_id, "instanceId": instance_id}, operator=operator)


def instance_unregister(*, instance_id: str, operator: str) -> dict[str, Any]:
    return call("system.unregister", {"instanceId": instance_id, "sessionId": f"operator-{operator}",
                                      "timestamp": now_ms()}, operator=operator)


def event_replay(*, event_type: str, payload: Any, metadata: dict[str, Any] | None, original_id: str,
                 operator: str) -> str:
    """Publish a stored event again, under a new id, marked as a replay of the original. Waits
    until it is stored: from sync code the loop may end as soon as the call returns, taking an
    unsent outbox with it."""
    from events.bus import get_bus

    meta = {**(metadata or {}), "replayOf": original_id, "replayedBy": operator}
    return async_to_sync(get_bus().publish)(event_type, payload, meta, wait=True)
