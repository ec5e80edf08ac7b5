"""What both embedded servers share: paths, process helpers, directory checks and the lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from claudebench import embedded

MIN_FREE_BYTES = 128 * 1024 * 1024
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
LOCK_TIMEOUT_S = 120.0
LOG_TAIL_LINES = 15


class EngineError(RuntimeError):
    """A server could not start or stop. The first line says why; a failed binary adds its log tail."""


@dataclass(frozen=True)
class StartedEngines:
    """Which servers one ensure_started() call started (False: reused, not wanted, or external).

    It is also the handle to pass to stop(): `uses` names the servers this call holds.
    """

    postgres: bool = False
    redis: bool = False
    uses: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.postgres or self.redis


def log_dir() -> Path:
    return embedded.DATA_DIR / "log"


def pg_log() -> Path:
    return log_dir() / "postgres.log"


def valkey_log() -> Path:
    return log_dir() / "valkey.log"


def alive(pid: int) -> bool:
    """True if pid runs (a zombie waiting to be reaped counts as gone)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, just reaped
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): kill(0) is all we know
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline_has(pid: int, word: str) -> bool:
    """Guard against a pid file whose pid now belongs to another program."""
    try:
        return word in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no procfs: trust the pid file


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait for pid to exit; False if it still runs after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a server log, indented, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"    (no log at {path})"
    last = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in last) if last else f"    ({path} is empty)"


def run(argv: list[str], *, timeout_s: float, **popen) -> tuple[int, str]:
    """Run a program to completion; output goes through a file, never a pipe that a daemon
    child could inherit and hold open."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                timeout=timeout_s, check=False, **popen,
            )
        except subprocess.TimeoutExpired:
            return -1, f"timed out after {timeout_s:.0f}s"
        except OSError as exc:
            return -1, f"{argv[0]}: {exc.strerror}"
        out.seek(0)
        return done.returncode, out.read().strip()


def prepare_dirs() -> None:
    """Create the data, log and socket directories, or say in one line why they cannot be used."""
    for directory in (embedded.DATA_DIR, log_dir(), embedded.SOCKET_DIR):
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise EngineError(f"cannot create directory {directory}: {exc.strerror}") from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise EngineError(f"directory {directory} is not writable by uid {os.geteuid()}")
    if os.geteuid() != 0 and embedded.SOCKET_DIR.stat().st_uid != os.geteuid():
        raise EngineError(f"socket directory {embedded.SOCKET_DIR} belongs to another user")
    free = shutil.disk_usage(embedded.DATA_DIR).free
    if free < MIN_FREE_BYTES:
        raise EngineError(
            f"only {free // 2**20} MB free on the disk holding {embedded.DATA_DIR}; "
            f"the embedded servers need at least {MIN_FREE_BYTES // 2**20} MB"
        )


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One process at a time starts or stops the servers of a data directory."""
    path = embedded.DATA_DIR / ".engines.lock"
    try:
        handle = open(path, "a")  # held, and locked, for the whole block
    except OSError as exc:
        raise EngineError(f"cannot create lock file {path}: {exc.strerror}") from None
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(f"another process has held {path} for {LOCK_TIMEOUT_S:.0f}s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
