"""Subscriptions run by the consume_streams subprocess tests (CB_SUBSCRIPTION_MODULES points here)."""

from __future__ import annotations

import asyncio
import os

from events.idempotency import apply_once
from events.subscriptions import durable

EFFECTS = "cb:test:effects"  # hash: event id → how many times its effect happened
WORKERS = "cb:test:workers"  # hash: consumer pid → effects it applied


@durable("load.*", name="effects", group="cb:test-effects",
         batch_size=int(os.environ.get("CB_TEST_BATCH", "20")),
         concurrency=int(os.environ.get("CB_TEST_CONCURRENCY", "4")))
async def count_effect(event) -> None:
    """Slow on purpose (CB_TEST_EFFECT_DELAY_S), so a test can kill the process mid-batch."""
    await asyncio.sleep(float(os.environ.get("CB_TEST_EFFECT_DELAY_S", "0")))
    await apply_once("effects", event, lambda pipe: (pipe.hincrby(EFFECTS, event.id, 1),
                                                     pipe.hincrby(WORKERS, str(os.getpid()), 1)))


from events import audit  # noqa: E402, F401  (the audit drain too)
