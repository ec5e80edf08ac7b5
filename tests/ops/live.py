"""A live server subprocess (uvicorn) on the test databases, for the multi-process tests."""

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

from tests.dsn import database_url

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k not in ("CB_UP_PROCESSES", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL, PYTHONUNBUFFERED="1",
               DJANGO_SETTINGS_MODULE="claudebench.settings", INSTANCE_ID=f"worker-test-{os.getpid()}")
    env.update(extra)
    return env


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def live_server(log_path: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """uvicorn on a free port; yields (base URL, process). SIGTERM at the end, SIGKILL if stuck."""
    port = free_port()
    argv = [sys.executable, "-m", "claudebench.ops.serve", "claudebench.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--lifespan", "on", "--timeout-graceful-shutdown", "5"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=server_env(**env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after 60s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
