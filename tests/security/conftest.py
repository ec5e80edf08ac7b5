"""Fixtures of the trust-boundary tests: remote and loopback clients, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgiref.sync import sync_to_async

REMOTE = ("10.1.2.3", 1234)
LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture(autouse=True)
def _loopback_is_agent(settings) -> None:
    """The shipped default (the root conftest widens it for the other wire tests)."""
    settings.CB_LOOPBACK_SCOPE = "agent"
    settings.CB_ALLOW_LOOPBACK_ANONYMOUS = True


def _client(addr: tuple[str, int]):
    from claudebench.asgi import application

    transport = httpx.ASGITransport(app=application, client=addr)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000")


@pytest.fixture
async def remote(redis) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests come from a non-loopback address."""
    async with _client(REMOTE) as c:
        yield c


@pytest.fixture
async def local(redis) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(LOOPBACK) as c:
        yield c


@pytest.fixture
def issue() -> Callable:
    """issue(scope) → (row, token) through the real issuing code."""
    from claudebench.security import tokens

    async def _issue(scope: str = "agent", name: str = "test"):
        return await sync_to_async(tokens.issue)(name, scope)

    return _issue


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def rpc_body(method: str, params=None, rid=1) -> dict:
    body = {"jsonrpc": "2.0", "method": method, "id": rid}
    if params is not None:
        body["params"] = params
    return body
