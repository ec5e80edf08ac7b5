"""Start and stop the embedded PostgreSQL and Valkey servers (DESIGN.md, Processes: engines).

Both listen only on the Unix sockets named in claudebench/embedded.py and keep their data under
embedded.DATA_DIR; neither opens a TCP port. They run as daemons in their own sessions, so a
Ctrl-C in the terminal reaches the supervisor, which stops them after its children. A server that
is already running on these sockets (an earlier `make run`, a test session, `python -m
claudebench.engines start`) is reused. stop() stops a server only if an ensure_started() call
without keep started it and no other live process still uses it (leases.py), so a `make test`
never pulls the servers from under a running `make run`, nor the other way round.

    python -m claudebench.engines start|stop|status

One module per server (postgres.py, valkey.py); leases.py tracks the users; _common.py holds the
rest they share.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading

from claudebench import embedded
from claudebench.engines import leases
from claudebench.engines._common import EngineError, StartedEngines, locked, prepare_dirs
from claudebench.engines.postgres import ensure_postgres, pg_pid, pg_ping, stop_postgres
from claudebench.engines.valkey import ensure_valkey, stop_valkey, valkey_pid, valkey_ping

__all__ = ["EngineError", "StartedEngines", "ensure_started", "main", "status", "stop", "stop_all"]


def ensure_started(postgres: bool = True, redis: bool = True, *, keep: bool = False) -> StartedEngines:
    """Start (or reuse) the servers asked for and hold them until stop(); say which were started here.

    With keep, the servers are pinned instead: they run until `python -m claudebench.engines
    stop`, and the handle holds nothing. A handle not passed to stop() is released when this
    process exits normally.
    """
    if not (postgres or redis):
        return StartedEngines()
    try:
        prepare_dirs()
        with locked():
            state = leases.read()
            started_redis = ensure_valkey() if redis else False
            try:
                started_pg = ensure_postgres() if postgres else False
            except BaseException:
                if started_redis:  # leave nothing half-started behind
                    stop_valkey()
                raise
            for server, wanted, began in (("valkey", redis, started_redis), ("postgres", postgres, started_pg)):
                if wanted:
                    leases.record_start(state, server, started=began, keep=keep)
            leases.write(state)
    except OSError as exc:
        raise EngineError(f"embedded servers: {exc}") from None
    uses = frozenset() if keep else frozenset(s for s, w in (("postgres", postgres), ("valkey", redis)) if w)
    handle = StartedEngines(postgres=started_pg, redis=started_redis, uses=uses)
    if uses:
        with _open_lock:
            if not _open:
                atexit.register(_release_at_exit, os.getpid())
            _open.append(handle)
    return handle


def stop(started: StartedEngines) -> StartedEngines:
    """Release a handle from ensure_started(); return the servers that this stopped.

    A server stops when it was started without keep and no live process uses it any more.
    Releasing a handle twice, or one that holds nothing, does nothing.
    """
    with _open_lock:
        if not any(handle is started for handle in _open):
            return StartedEngines()
        _open[:] = [handle for handle in _open if handle is not started]
        released = [server for server in started.uses if not any(server in h.uses for h in _open)]
    if not released:
        return StartedEngines()
    with locked():
        state = leases.read()
        to_stop = {server for server in released if leases.release(state, server)}
        # Reverse of the start order: PostgreSQL first, then Valkey.
        stopped_pg = "postgres" in to_stop and stop_postgres()
        stopped_redis = "valkey" in to_stop and stop_valkey()
        leases.write(state)
    return StartedEngines(postgres=stopped_pg, redis=stopped_redis)


_open: list[StartedEngines] = []  # this process's handles not yet released
_open_lock = threading.Lock()


def _release_at_exit(pid: int) -> None:
    if os.getpid() != pid:  # a forked child inherited the hook: the handles are not its own
        return
    for handle in list(_open):
        with contextlib.suppress(EngineError, OSError):
            stop(handle)


def stop_all() -> StartedEngines:
    """Stop whichever embedded servers run on this data directory, users or not."""
    if not embedded.DATA_DIR.exists():
        return StartedEngines()
    with locked():
        stopped = StartedEngines(postgres=stop_postgres(), redis=stop_valkey())
        leases.write({})
    return stopped


def status() -> dict[str, str]:
    """One line per server: running (pid, socket, who keeps it) or stopped."""
    pg, vk = "stopped", "stopped"
    state = leases.read()
    if pid := pg_pid():
        socket = f"{embedded.SOCKET_DIR}/.s.PGSQL.{embedded.PG_PORT}"
        pg = f"running pid={pid} socket={socket} database={embedded.PG_DATABASE}"
        pg += ("" if pg_ping() else " (not answering)") + _held_by(state.get("postgres"))
    answer, pid = valkey_ping(), valkey_pid()
    if answer or pid:
        vk = f"running pid={pid} socket={embedded.VALKEY_SOCKET}"
        vk += ("" if answer == "ready" else f" ({answer or 'not answering'})") + _held_by(state.get("valkey"))
    return {"postgres": pg, "valkey": vk}


def _held_by(entry: dict | None) -> str:
    if entry is None or not entry["auto_stop"]:
        return ", kept until `python -m claudebench.engines stop`"
    users = len(entry["users"])
    if not users:
        return ", its users have exited without stopping it; the next user to finish stops it"
    return f", in use by {users} process{'es' if users != 1 else ''}; stops after the last"


def main(argv: list[str] | None = None) -> int:
    """The command line: start (the servers whose URL variable is unset), stop (both), status."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if len(args) == 1 else ""
    if command not in ("start", "stop", "status"):
        print("usage: python -m claudebench.engines start|stop|status", file=sys.stderr)
        return 2
    try:
        if command == "start":
            servers = (
                ("postgres", "DATABASE_URL", embedded.DATABASE_URL),
                ("valkey", "REDIS_URL", embedded.REDIS_URL),
            )
            wanted = {name: not os.environ.get(variable) for name, variable, _ in servers}
            started = ensure_started(postgres=wanted["postgres"], redis=wanted["valkey"], keep=True)
            began = {"postgres": started.postgres, "valkey": started.redis}
            for name, variable, url in servers:
                if not wanted[name]:
                    print(f"{name}: not started ({variable} is set)")
                else:
                    print(f"{name}: {'started' if began[name] else 'already running'} {url}")
        elif command == "stop":
            stopped = stop_all()
            print(f"postgres: {'stopped' if stopped.postgres else 'was not running'}")
            print(f"valkey: {'stopped' if stopped.redis else 'was not running'}")
        else:
            for name, line in status().items():
                print(f"{name}: {line}")
            print(f"data: {embedded.DATA_DIR}")
    except EngineError as exc:
        print(f"engines: error: {exc}", file=sys.stderr)
        return 1
    return 0
