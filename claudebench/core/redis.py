"""One asyncio Redis client per event loop (a client never crosses loops; STYLE §4)."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def get_redis() -> aioredis.Redis:
    """The client of the running loop, created on first use from settings.REDIS_URL."""
    loop = asyncio.get_running_loop()
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
    return client


async def close_redis() -> None:
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()
