"""Servers the bench starts: uvicorn subprocesses on a free loopback port, and their memory.

Every server, ceiling or product, runs under the production server program and flags (uvicorn,
uvloop, httptools, no access log, `--workers` as in production), so the ceilings and the product
differ only in the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import IO
from urllib.parse import urlsplit

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
RSS_SAMPLE_EVERY_S = 0.25
_LOG_TAIL_BYTES = 4000


def uvicorn_argv(app: str, *, host: str, port: int, workers: int, factory: bool = False) -> list[str]:
    """The production uvicorn command line for `app` (an import string)."""
    argv = [
        sys.executable, "-m", "uvicorn", app,
        "--host", host, "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if factory:
        argv.append("--factory")
    return argv


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A server the load generator can reach; `pid` is None for one the bench did not start."""

    url: str
    pid: int | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or HOST

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def path(self, path: str) -> str:
        prefix = urlsplit(self.url).path.rstrip("/")
        return f"{prefix}{path}"


class ServerFailed(RuntimeError):
    """A server the bench started exited or never answered."""


def _tail(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0, os.SEEK_END)
    size = log.tell()
    log.seek(max(0, size - _LOG_TAIL_BYTES))
    return log.read().decode(errors="replace")


async def _answers_http(host: str, port: int) -> bool:
    """True once something on host:port answers a GET / with an HTTP status line."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 10)
        return line.startswith(b"HTTP/1.")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _wait_ready(
    proc: asyncio.subprocess.Process, host: str, port: int, log: IO[bytes], what: str
) -> None:
    deadline = monotonic() + READY_TIMEOUT_S
    while monotonic() < deadline:
        if proc.returncode is not None:
            raise ServerFailed(f"{what} exited with status {proc.returncode}:\n{_tail(log)}")
        if await _answers_http(host, port):
            return
        await asyncio.sleep(0.1)
    raise ServerFailed(f"{what} did not answer within {READY_TIMEOUT_S:g} s:\n{_tail(log)}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the server (uvicorn stops its workers), then SIGKILL its process group if it hangs."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # start_new_session made the server the leader of its own group: this reaches only it
        # and the workers it forked.
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


@contextlib.asynccontextmanager
async def uvicorn_server(
    app: str, *, env: dict[str, str], workers: int, cwd: Path, factory: bool = False
) -> AsyncIterator[Server]:
    """Start `app` under production uvicorn on a free port; yield it once it answers; stop it."""
    port = free_port()
    argv = uvicorn_argv(app, host=HOST, port=port, workers=workers, factory=factory)
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            await _wait_ready(proc, HOST, port, log, what=app)
            yield Server(url=f"http://{HOST}:{port}", pid=proc.pid)
            if proc.returncode is not None:
                raise ServerFailed(f"{app} exited during the run:\n{_tail(log)}")
        finally:
            await _stop(proc)


# -- memory -----------------------------------------------------------------------------------------


def _proc_children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    return kids


def _proc_rss(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def tree_rss(pid: int) -> int | None:
    """Resident bytes of a process and all its descendants (uvicorn's supervisor and workers).

    Read from /proc where there is one: it runs in the load generator's event loop, four times
    a second, and psutil finds children by scanning every process on the machine (4 ms here,
    during which no answer is read: a stall in the latencies measured); /proc names them."""
    if os.path.isdir(f"/proc/{pid}/task"):
        total, todo = 0, [pid]
        while todo:
            current = todo.pop()
            total += _proc_rss(current)
            todo.extend(_proc_children(current))
        return total
    try:
        import psutil
    except ImportError:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


class RssPeak:
    """Samples a server's process-tree RSS in the background and keeps the peak."""

    def __init__(self, pid: int | None, every_s: float = RSS_SAMPLE_EVERY_S):
        self.pid = pid
        self.every_s = every_s
        self.peak: int | None = None
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        if self.pid is None:
            return
        rss = tree_rss(self.pid)
        if rss is not None and (self.peak is None or rss > self.peak):
            self.peak = rss

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    async def __aenter__(self) -> RssPeak:
        if self.pid is not None:
            self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()
