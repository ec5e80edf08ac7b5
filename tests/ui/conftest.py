"""Fixtures of the operator's view: the channel layer on the test Redis database, WebSocket clients,
a staff operator with an API token."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from channels.testing import WebsocketCommunicator


@pytest.fixture(autouse=True)
def test_channel_layer(settings, redis):
    """The channel layer on the test Redis database (settings point at the dev one at import)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": "cb:channels:test"},
        },
        "live": settings.CHANNEL_LAYERS["live"],
    }
    return settings.CHANNEL_LAYERS


@pytest.fixture
def unique_type() -> str:
    """An event-type prefix no concurrent test session publishes (pub/sub ignores db numbers)."""
    return f"uitest{secrets.token_hex(4)}"


class Ws:
    """A WebSocket client on the project's ASGI app, speaking JSON."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.c = communicator
        self.client_id = ""

    async def send(self, message: Any) -> None:
        await self.c.send_to(text_data=message if isinstance(message, str) else orjson.dumps(message).decode())

    async def recv(self, wait_s: float = 5.0) -> dict[str, Any]:
        return orjson.loads(await self.c.receive_from(wait_s))

    async def recv_type(self, kind: str, wait_s: float = 5.0) -> dict[str, Any]:
        """The next frame of one `type`, skipping events of other sessions."""
        while True:
            frame = await self.recv(wait_s)
            if frame.get("type") == kind:
                return frame

    async def events_until(self, count: int, prefix: str, wait_s: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` event frames whose type starts with `prefix` (others are skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = await self.recv(wait_s)
            if frame.get("type") == "event" and frame["event"].startswith(prefix):
                found.append(frame)
        return found

    async def quiet_for(self, prefix: str, seconds: float = 0.3) -> bool:
        """True when no event of `prefix` arrives within `seconds`."""
        while True:
            if await self.c.receive_nothing(seconds, interval=0.01):
                return True
            frame = await self.recv()
            if frame.get("type") == "event" and frame["event"].startswith(prefix):
                return False


@pytest.fixture
async def ws_connect(redis) -> AsyncIterator:
    from claudebench.asgi import application
    from events.fanout import close_fanout

    opened: list[Ws] = []

    async def from_loopback(scope, receive, send):  # a local client, as the front (issue 10) expects
        await application({**scope, "client": ("127.0.0.1", 50001)}, receive, send)

    async def _open(headers: list[tuple[bytes, bytes]] | None = None, expect: bool = True) -> Ws:
        comm = WebsocketCommunicator(from_loopback, "/ws", headers=headers or [(b"user-agent", b"pytest-ui")])
        connected, _ = await comm.connect(timeout=10)
        ws = Ws(comm)
        if not expect:
            assert not connected
            return ws
        assert connected
        opened.append(ws)
        hello = await ws.recv()
        assert hello["type"] == "connected"
        ws.client_id = hello["clientId"]
        return ws

    yield _open
    for ws in opened:
        await ws.c.disconnect()
    await close_fanout()


@pytest.fixture
def operator(db):
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    user = User.objects.create_user("op", password="op-password-1", is_staff=True, is_superuser=True)
    token = Token.objects.create(user=user)
    return {"user": user, "token": token.key, "headers": {"Authorization": f"Token {token.key}"}}


@pytest.fixture(autouse=True)
def _collect_request_threads_connections():
    """Django runs each ASGI request's sync code in a thread of its own; the PostgreSQL connection
    that thread opened goes away with it only when collected. Collect after each test, so the test
    database can be dropped at the end of the session."""
    yield
    import gc

    gc.collect()
