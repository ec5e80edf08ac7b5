"""Waiting on a condition with a deadline (tests never pace themselves with fixed sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0, what: str = "",
                     *, every_s: float = 0.02) -> None:
    """Poll `check` (plain or async) until it is true; fail after `timeout_s` naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or check}")
        await asyncio.sleep(every_s)
