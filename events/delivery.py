"""Calling a subscriber: selection, retries with backoff, and the outcome (both buses use this)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from events.subscriptions import Subscription
from events.types import Event, TransientError

log = logging.getLogger("claudebench.events.delivery")


@dataclass
class Outcome:
    ok: bool
    attempts: int
    retried: int = 0
    error: str | None = None


def accepts(sub: Subscription, event: Event) -> bool:
    """Whether `sub` should get `event` at all (a skipped event is acknowledged, not delivered)."""
    if event.kind == "request" and not sub.include_requests:
        return False  # SPEC §4.7: request records are never re-executed or mistaken for events
    if not sub.wants_type(event.type):
        return False
    target = event.metadata.get("requeuedFor")
    if target is not None and target != sub.group:
        return False  # requeued from the dead letters for another subscription only
    return sub.filter is None or bool(sub.filter(event))


def describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:1000]


async def deliver(sub: Subscription, target: Event | list[Event]) -> Outcome:
    """Run the handler on one event (or one batch) up to max_retries times, backing off between.

    A TransientError propagates at once: the caller keeps the entries pending and tries later.
    """
    retried = 0
    error = "no attempt"
    for attempt in range(1, sub.max_retries + 1):
        for event in target if isinstance(target, list) else [target]:
            event.attempt = attempt
        try:
            await sub.handler(target)
            return Outcome(ok=True, attempts=attempt, retried=retried)
        except TransientError:
            raise
        except Exception as exc:  # subscriber failures are isolated, counted and retried
            error = describe(exc)
            log.warning("subscription %s attempt %d/%d failed: %s", sub.name, attempt, sub.max_retries, error)
        if attempt < sub.max_retries:
            retried += 1
            await asyncio.sleep(sub.delay_ms(attempt) / 1000)
    return Outcome(ok=False, attempts=sub.max_retries, retried=retried, error=error)
