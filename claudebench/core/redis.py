"""One asyncio Redis client per event loop (a client never crosses loops; STYLE §4).

Lua scripts, the hot path, go through the client's multiplexed connection (core/redis_mux.py);
everything else uses the client's pool."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

from claudebench.core import redis_mux

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
# The last (loop, client) handed out: a web worker has one loop, so most calls skip the lookup.
_last: tuple[asyncio.AbstractEventLoop | None, aioredis.Redis | None] = (None, None)


def get_redis() -> aioredis.Redis:
    """The client of the running loop, created on first use from settings.REDIS_URL."""
    global _last
    loop = asyncio.get_running_loop()
    if _last[0] is loop:
        return _last[1]  # type: ignore[return-value]
    client = _clients.get(loop)
    if client is None:
        # Blocking pool: a burst past the limit waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            max_connections=settings.CB_REDIS_MAX_CONNECTIONS,
            timeout=10,
            health_check_interval=30,
        )
        client = aioredis.Redis(connection_pool=pool)
        _clients[loop] = client
    _last = (loop, client)
    return client


async def unlink_matching(r: aioredis.Redis, pattern: str, *, batch: int = 500) -> int:
    """UNLINK every key matching `pattern` (SCAN, `batch` keys a command); returns how many."""
    removed, chunk = 0, []
    async for key in r.scan_iter(match=pattern, count=batch):
        chunk.append(key)
        if len(chunk) >= batch:
            removed += await r.unlink(*chunk)
            chunk = []
    if chunk:
        removed += await r.unlink(*chunk)
    return removed


async def close_redis() -> None:
    global _last
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    if _last[0] is loop:
        _last = (None, None)
    if client is not None:
        await redis_mux.close(client)
        await client.aclose()
