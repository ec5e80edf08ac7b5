"""Idempotency helpers: an effect applied once per event id, even when delivered twice."""

from __future__ import annotations

import asyncio

import pytest

from events.idempotency import already_done, apply_once

pytestmark = pytest.mark.django_db(transaction=True)


async def test_apply_once_runs_the_effect_once_per_event(redis):
    def effect(pipe):
        pipe.incr("cb:test:counter")

    results = await asyncio.gather(*(apply_once("scope", "evt-1", effect) for _ in range(10)))
    assert results.count(True) == 1
    assert await redis.get("cb:test:counter") == "1"
    assert await already_done("scope", "evt-1")
    assert not await already_done("other-scope", "evt-1")
    assert await apply_once("other-scope", "evt-1", effect) is True
    assert await redis.get("cb:test:counter") == "2"
