"""Fixtures for the pipeline layers: test.circuit switched on, handlers registered for one test."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from claudebench.core import pipeline, registry
from claudebench.core.layers import cache


def _forget() -> None:
    from claudebench.transport import rest

    cache.forget_registry()
    rest.route_table.cache_clear()


@pytest.fixture
def circuit_on(settings):
    """CB_ENABLE_TEST_HANDLERS on, so test.circuit is registered (SPEC §16 row 42)."""
    registry.load()
    settings.CB_ENABLE_TEST_HANDLERS = True
    importlib.import_module("claudebench.test_handlers")
    _forget()
    yield
    _forget()


@pytest.fixture
def limits(settings):
    """Override Limits fields of handlers for one test: limits("test.circuit", rate=3)."""
    settings.CB_LIMIT_OVERRIDES = {}

    def _set(event: str, **fields: Any) -> None:
        settings.CB_LIMIT_OVERRIDES = {**settings.CB_LIMIT_OVERRIDES, event: fields}

    return _set


@pytest.fixture
def temp_handler():
    """Register handlers for one test only; they leave the registry afterwards."""
    registry.load()
    added: list[str] = []

    def _register(event: str, fn: Callable[..., Awaitable[Any]], **declaration: Any) -> None:
        registry.handler(event, **declaration)(fn)
        added.append(event)
        _forget()

    yield _register
    for event in added:
        registry._HANDLERS.pop(event, None)
    _forget()


@pytest.fixture
def settle() -> Callable[[], Awaitable[None]]:
    """Wait until this loop's post-call bookkeeping (breaker, audit, counters) is in Redis."""
    return pipeline.settle


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, every_s: float = 0.02) -> None:
    """Poll an async condition until it holds or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(every_s)
