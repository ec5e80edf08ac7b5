"""Run project commands as real subprocesses and wait on what they print (no sleeps)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without the variables that point at servers or an instance."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "INSTANCE_ID", "CB_DATA_DIR", "CB_UP_PROCESSES"}
    }
    env.update(PYTHONUNBUFFERED="1", LOG_LEVEL="INFO", DJANGO_SETTINGS_MODULE="claudebench.settings")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def wait_until(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


class Spawned:
    """A subprocess whose merged stdout/stderr is collected line by line on a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 20.0, count: int = 1) -> list[re.Match]:
        """The first `count` output lines matching pattern, waiting for them up to timeout_s."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {count}× {pattern!r} in output:\n{self.output}")
                self._changed.wait(min(left, 0.2))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 30.0) -> int:
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL it and every test child it reported (children ignoring SIGTERM outlive it)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for match in map(re.compile(r"^child \S+ pid=(\d+)").search, list(self.lines)):
            if match and pid_alive(int(match[1])):
                os.kill(int(match[1]), signal.SIGKILL)


@pytest.fixture
def spawn() -> Iterator:
    """spawn(argv, env) → Spawned; whatever is still running at the end is killed by pid."""
    started: list[Spawned] = []

    def _spawn(argv: list[str], env: dict[str, str]) -> Spawned:
        spawned = Spawned(argv, env)
        started.append(spawned)
        return spawned

    yield _spawn
    for spawned in started:
        spawned.kill()
