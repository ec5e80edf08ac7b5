"""A Valkey server of a test's own, on a Unix socket in a temporary folder (never the machine's,
never the session's): for tests that stop and start Redis under a running client or server."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


class OwnValkey:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.socket = directory / "valkey.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        from claudebench.engines.valkey import valkey_bin

        self.proc = subprocess.Popen(
            [str(valkey_bin()), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert time.monotonic() < deadline, "valkey did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
