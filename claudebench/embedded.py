"""Addresses of the embedded PostgreSQL and Valkey servers.

This module only computes paths and URLs; it never starts a process (settings import it).
Starting and stopping lives in the claudebench.engines package, used by `manage.py up` and the test
session. Servers listen on Unix sockets inside the project's git-ignored data directory, so they
never take a TCP port (5432 and 6379 stay free for whatever the machine runs).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CB_DATA_DIR") or BASE_DIR / ".data").resolve()
PG_DATA_DIR = DATA_DIR / "postgres"
VALKEY_DATA_DIR = DATA_DIR / "valkey"
PG_DATABASE = "claudebench"
PG_USER = "postgres"
# The number in the socket file name (.s.PGSQL.<port>); nothing listens on this TCP port.
PG_PORT = 54329

# A Unix socket path must fit in 107 bytes; deep checkouts get a short directory in the temp dir
# named after the data directory, so two checkouts never share one.
_SOCKET_LIMIT = 100


def _socket_dir() -> Path:
    preferred = DATA_DIR / "run"
    if len(str(preferred / f".s.PGSQL.{PG_PORT}.lock")) <= _SOCKET_LIMIT:
        return preferred
    digest = hashlib.sha256(str(DATA_DIR).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"cb-{digest}"


SOCKET_DIR = _socket_dir()
VALKEY_SOCKET = SOCKET_DIR / "valkey.sock"

DATABASE_URL = f"postgresql://{PG_USER}@/{PG_DATABASE}?host={SOCKET_DIR}&port={PG_PORT}"
REDIS_URL = f"unix://{VALKEY_SOCKET}?db=0"
