"""Live servers for the MCP tests: uvicorn (with lifespan) and daphne (without), as subprocesses
on free ports, pointed at this session's test PostgreSQL database and test Redis database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.dsn import database_url

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 60
PING_INTERVAL_MS = 200  # the GET stream pings this often in the test servers
MAX_BODY_BYTES = 65_536  # request bodies past this are refused by the test servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL, PYTHONUNBUFFERED="1",
               CB_MCP_PING_INTERVAL_MS=str(PING_INTERVAL_MS), CB_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
               CB_LOOPBACK_SCOPE="admin")  # the tool tests call admin-scope tools (system.flush) tokenless
    return env


@contextlib.contextmanager
def _serve(argv: list[str], port: int, log_path: Path) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=_server_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/mcp/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {START_DEADLINE_S}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def uvicorn_server(django_db_setup, _test_redis_database, tmp_path_factory) -> Iterator[str]:
    """Base URL of a uvicorn server running the project's ASGI app with its lifespan."""
    port = _free_port()
    argv = [sys.executable, "-m", "uvicorn", "claudebench.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--lifespan", "on", "--log-level", "warning"]
    with _serve(argv, port, tmp_path_factory.mktemp("uvicorn") / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def daphne_server(django_db_setup, _test_redis_database, tmp_path_factory) -> Iterator[str]:
    """Base URL of a daphne server (daphne sends no ASGI lifespan)."""
    port = _free_port()
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "claudebench.asgi:application"]
    with _serve(argv, port, tmp_path_factory.mktemp("daphne") / "server.log") as base:
        yield base


@pytest.fixture
async def mcp_client(client):
    """The in-process ASGI client (no lifespan: /mcp starts the SDK on first use), stopped after."""
    from claudebench.transport import mcp

    yield client
    await mcp.shutdown()
