"""Shared fixtures: real Redis (a test-only database number) and real PostgreSQL (STYLE §9)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from django.conf import settings

pytest_plugins = ["tests.plugins.engines"]

# Never database 0: the operator's live data sits there. Pub/sub ignores database numbers, so
# tests that listen on channels filter on ids they created themselves.
TEST_REDIS_DB = int(os.environ.get("CB_TEST_REDIS_DB", "9"))


def redis_url_with_db(url: str, db: int) -> str:
    if url.startswith("unix://"):
        base = re.sub(r"([?&])db=\d+", r"\1", url).rstrip("?&")
        return f"{base}{'&' if '?' in base else '?'}db={db}"
    return re.sub(r"^(rediss?://[^/?]*)(/\d*)?", rf"\1/{db}", url, count=1)


@pytest.fixture(scope="session", autouse=True)
def _test_redis_database() -> None:
    settings.REDIS_URL = redis_url_with_db(settings.REDIS_URL, TEST_REDIS_DB)
    # Wire tests call admin handlers from loopback without a token; tests/security sets it back.
    settings.CB_LOOPBACK_SCOPE = "admin"


@pytest.fixture(autouse=True)
async def _close_loop_clients() -> AsyncIterator[None]:
    """Each test runs on its own event loop: close that loop's Redis client and PG pool after it."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    from claudebench.core import pg
    from claudebench.core.redis import close_redis

    await pg.close_pool()
    await close_redis()
    # The async ORM ran on asgiref's shared thread; close that thread's connections too, or the
    # test database cannot be dropped at the end of the session.
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def redis():
    """The real server from REDIS_URL on the test database, flushed before and after (FLUSHDB)."""
    from claudebench.core.redis import get_redis

    client = get_redis()
    await client.flushdb()
    yield client
    await client.flushdb()


@pytest.fixture
def call(redis) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Run a handler through the full pipeline, as an internal caller."""
    from claudebench.core import pipeline
    from claudebench.core.pipeline import CallMeta

    async def _call(event: str, params: Any = None, **meta: Any) -> dict[str, Any]:
        return await pipeline.call(event, {} if params is None else params, CallMeta(**meta))

    return _call


@pytest.fixture
async def client(redis) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client speaking to the project's ASGI application in-process."""
    from claudebench.asgi import application

    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as c:
        yield c


@pytest.fixture
def rpc(client) -> Callable[..., Awaitable[dict[str, Any]]]:
    """POST one JSON-RPC request to /rpc and return the decoded answer."""
    counter = iter(range(1, 1_000_000))

    async def _rpc(method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": next(counter), **extra}
        if params is not None:
            body["params"] = params
        response = await client.post("/rpc", content=orjson.dumps(body))
        assert response.status_code == 200, response.text
        return response.json()

    return _rpc


@pytest.fixture
def stream_events(redis) -> Callable[[str], Awaitable[list[dict[str, Any]]]]:
    """Envelopes written to `cb:stream:{type}`, oldest first (domain events, not request records)."""
    from claudebench.core import keys

    async def _read(event_type: str) -> list[dict[str, Any]]:
        entries = await redis.xrange(keys.stream(event_type))
        envelopes = [orjson.loads(fields["data"]) for _, fields in entries]
        return [e for e in envelopes if (e.get("metadata") or {}).get("kind") != "request"]

    return _read


@pytest.fixture
def handoff(settings):
    """Background hand-off on, with the channel layer on the test Redis database (as the runworker
    subprocesses see it)."""
    from channels.layers import channel_layers

    settings.CB_BACKGROUND_HANDOFF = True
    layer = settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {**settings.CHANNEL_LAYERS,
                               "default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [settings.REDIS_URL]}}}
    channel_layers.backends.clear()
    yield settings
    channel_layers.backends.clear()
