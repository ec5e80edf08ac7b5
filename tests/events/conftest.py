"""Helpers of the event-bus tests: short intervals, a consumer run in-process, condition waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from events import subscriptions
from events.consumer import GroupConsumer
from events.subscriptions import Subscription
from tests.waiting import wait_until  # noqa: F401  (the events tests import it from here)


@pytest.fixture(autouse=True)
def fast_bus(settings):
    settings.CB_BUS_BLOCK_MS = 50
    settings.CB_BUS_DISCOVER_INTERVAL_MS = 100
    settings.CB_BUS_CLAIM_INTERVAL_MS = 100
    settings.CB_BUS_CLAIM_IDLE_MS = 300
    settings.CB_BUS_RETRY_DELAY_MS = 20
    settings.CB_BUS_TRANSIENT_BACKOFF_MAX_MS = 200
    settings.EVENT_BUS_ADAPTER = "redis"
    return settings


@pytest.fixture
def running():
    """`async with running(sub, name="c1") as consumer:` runs one GroupConsumer until the block ends."""

    @contextlib.asynccontextmanager
    async def _run(sub: Subscription, name: str = "c1") -> AsyncIterator[GroupConsumer]:
        stop = asyncio.Event()
        consumer = GroupConsumer(sub, name, stop)
        await consumer.discover()
        task = asyncio.create_task(consumer.run())
        try:
            yield consumer
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    return _run


@pytest.fixture
def sub():
    """Build a subscription (not registered globally unless asked)."""
    made: list[str] = []

    def _build(patterns, handler, *, register: bool = False, **options) -> Subscription:
        s = subscriptions.build(patterns, handler, **options)
        if register:
            subscriptions.register(s)
            made.append(s.name)
        return s

    yield _build
    for name in made:
        subscriptions.unregister(name)
