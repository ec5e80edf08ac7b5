"""Two real server processes sharing one Redis see one breaker (SPEC §3.10), and /metrics of a
server with two workers sums both (PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.dsn import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FALLBACK = {"success": False, "message": "Circuit breaker open - fallback response"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_database_url = database_url


@contextmanager
def _server(name: str, workers: int, extra_env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "CB_ENABLE_TEST_HANDLERS": "1", "INSTANCE_ID": f"test-{name}", "DJANGO_SETTINGS_MODULE":
           "claudebench.settings", "CB_LIMIT_OVERRIDES": orjson.dumps({"test.circuit": {"open_ms": 3_000}}).decode(),
           **extra_env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "claudebench.asgi:application", "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers), "--lifespan", "on", "--log-level", "warning"],
        env=env, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


async def _up(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as c:
        while True:
            try:
                if (await c.get(url + "/")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} did not start"
            await asyncio.sleep(0.2)


async def _rpc(url: str, params: dict, *, fresh: bool = False) -> dict:
    headers = {"connection": "close"} if fresh else {}
    async with httpx.AsyncClient() as c:
        body = {"jsonrpc": "2.0", "method": "test.circuit", "params": params, "id": 1}
        return (await c.post(url + "/rpc", content=orjson.dumps(body), headers=headers)).json()


async def _state(url: str) -> str:
    async with httpx.AsyncClient() as c:
        doc = (await c.get(url + "/handlers")).json()
    return next(h["circuitState"] for h in doc["handlers"] if h["event"] == "test.circuit")


async def _until(url: str, state: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := await _state(url)) != state:
        assert time.monotonic() < deadline, f"{url} still {seen}, wanted {state}"
        await asyncio.sleep(0.05)


async def test_two_servers_share_one_breaker_and_metrics_sum_workers(redis, tmp_path):
    prom = tmp_path / "prom"
    prom.mkdir()
    with _server("a", 1, {}) as a, _server("b", 2, {"PROMETHEUS_MULTIPROC_DIR": str(prom)}) as b:
        await asyncio.gather(_up(a), _up(b))
        for _ in range(5):
            assert (await _rpc(a, {"shouldFail": True}))["error"]["code"] == -32603
        await _until(b, "OPEN")                                  # tripped on A, seen by B
        assert (await _rpc(b, {}))["result"] == FALLBACK
        await _until(a, "HALF_OPEN")
        assert await _state(b) == "HALF_OPEN"
        for _ in range(3):
            assert (await _rpc(b, {}))["result"]["success"] is True
        await _until(a, "CLOSED")
        assert await _state(b) == "CLOSED"

        for _ in range(20):                                      # new connections: both workers serve
            assert (await _rpc(b, {}, fresh=True))["result"]["success"] is True
        async with httpx.AsyncClient() as c:
            text = (await c.get(b + "/metrics")).text
        total = sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name == "claudebench_handler_calls_total" and s.labels.get("handler") == "test.circuit")
        assert total == 1 + 3 + 20                                # every call B's workers answered
        assert any(p.name.startswith("counter_") for p in prom.iterdir())
