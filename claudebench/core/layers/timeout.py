"""Timeout layer (SPEC §3.7): the body is cancelled when its time is up, so a timed-out call has
no late side effects (SPEC §16 row 17). A timeout counts as a breaker failure (issue 4)."""

from __future__ import annotations

import asyncio
from typing import Any

from claudebench.core.errors import HandlerTimeout


async def run(ctx, data: Any, timeout_ms: int | None) -> Any:
    if timeout_ms is None:
        return await ctx.spec.fn(ctx, data)
    try:
        async with asyncio.timeout(timeout_ms / 1000):  # the body runs in this task: no task per call
            return await ctx.spec.fn(ctx, data)
    except TimeoutError:
        raise HandlerTimeout(f"Operation timed out after {timeout_ms}ms") from None
