"""Starting `manage.py` workers as subprocesses against the test databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings

from tests.dsn import database_url

ROOT = Path(__file__).resolve().parents[2]


def worker_env(**extra: str) -> dict[str, str]:
    """The test Redis database and the test PostgreSQL database, explicitly."""
    query = "application_name=cb-drain-test" if extra.pop("APPLICATION_NAME", None) is not None else ""
    url = database_url(query=query)
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL,
           "DJANGO_SETTINGS_MODULE": "claudebench.settings", "PYTHONUNBUFFERED": "1",
           "CB_SUBSCRIPTION_MODULES": "tests.events.sample_subscribers",
           "CB_BUS_BLOCK_MS": "50", "CB_BUS_DISCOVER_INTERVAL_MS": "100", "CB_BUS_CLAIM_INTERVAL_MS": "100",
           "CB_BUS_CLAIM_IDLE_MS": "500", "CB_BUS_RETRY_DELAY_MS": "20", "CB_BUS_TRANSIENT_BACKOFF_MAX_MS": "300",
           "CB_BUS_STATS_INTERVAL_S": "1", "CB_PG_POOL_TIMEOUT": "1", "CB_PG_POOL_MIN": "1",
           # A worker that will not stop is sent SIGABRT (Worker.stop): faulthandler then writes
           # where every thread of it was into its log.
           "PYTHONFAULTHANDLER": "1"}
    env.update(extra)
    return env


class Worker:
    """A manage.py command in its own process; stderr collected in a file."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile("w+", prefix="cb-worker-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return Path(self.log.name).read_text()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, then the exit code. A worker still running after `timeout_s` fails the test
        with the tail of its log, which ends with faulthandler's traceback of every thread."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGABRT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            tail = self.output()[-8000:]
            raise AssertionError(f"{' '.join(self.proc.args[2:])} did not stop within {timeout_s}s of SIGTERM; "
                                 f"its log ends:\n{tail}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)
