"""`manage.py up`: the supervisor behind `make run` (DESIGN.md, Processes).

Order: the embedded engines (for DATABASE_URL / REDIS_URL left unset), `migrate --noinput`,
`ensure_operator`, `hydrate_redis`, then the children in PROCESSES. A child that dies is started
again after an exponential backoff. SIGINT or SIGTERM stops the children in reverse order (SIGTERM,
then SIGKILL after --grace seconds), then the engines it started unless another process (a test
session) still uses them, and exits 0; a second signal kills what is left at once and exits 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from claudebench import engines

log = logging.getLogger("claudebench.up")


@dataclass(frozen=True)
class Child:
    """One supervised process: `python <args>`. `{NAME}` in args is settings.NAME, read at start."""

    name: str
    args: str


# The processes `make run` keeps running, started in this order, stopped in reverse. A worker is one
# line here, e.g. Child("gossip", "-m django gossip"); a child named "background" (`-m django
# runworker <channel>`) also turns on CB_BACKGROUND_HANDOFF for all of them.
PROCESSES: tuple[Child, ...] = (
    Child(
        "web",
        # uvicorn behind claudebench.ops.serve: a graceful SIGTERM stop exits 0 (issue 10).
        "-m claudebench.ops.serve claudebench.asgi:application --host {HOST} --port {PORT} --workers {CB_WEB_WORKERS}"
        # An open MCP server stream (GET /mcp) never ends by itself: after 5 s uvicorn cancels it.
        " --loop uvloop --http httptools --no-access-log --lifespan on --timeout-graceful-shutdown 5",
    ),
    Child("gossip", "-m django gossip"),  # this server's instance: heartbeat, leadership, leader duties
    Child("consumers", "-m django consume_streams"),  # durable subscriptions, the audit drain first
    Child("background", "-m django runworker {CB_BACKGROUND_CHANNEL}"),  # handed-off notifications
)

BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 30.0
HEALTHY_AFTER_S = 30.0  # a child that ran this long starts its next backoff from the beginning
TICK_S = 0.1


def argv_for(child: Child) -> list[str]:
    """The child's command line: this interpreter (so the project's virtualenv), then its args."""

    class FromSettings(dict):
        def __missing__(self, key: str) -> str:
            return str(getattr(settings, key))

    return [sys.executable, *(token.format_map(FromSettings()) for token in shlex.split(child.args))]


def load_table(path: str) -> tuple[Child, ...]:
    """`package.module.NAME` → that table of Child entries (tests run trivial children this way)."""
    module_name, _, attr = path.rpartition(".")
    try:
        table = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CommandError(f"--processes {path!r}: {exc}") from None
    return tuple(table)


def _die_with_parent() -> object:
    """A preexec hook: the child gets SIGTERM if the supervisor itself is killed (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, called after
    parent = os.getpid()

    def hook() -> None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return hook


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@dataclass
class Running:
    """A child's current process and its restart bookkeeping."""

    child: Child
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Starts the children, restarts the ones that die, stops them all on the first signal."""

    def __init__(self, table: tuple[Child, ...], env: dict[str, str], grace_s: float) -> None:
        self.running = [Running(child) for child in table]
        self.env = env
        self.grace_s = grace_s
        self.stopping = False
        self.forced = False

    def on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping:
            self.forced = True  # second signal: stop waiting
        self.stopping = True

    def spawn(self, slot: Running) -> None:
        argv = argv_for(slot.child)
        slot.started_at, slot.restart_at = time.monotonic(), None
        try:
            slot.proc = subprocess.Popen(
                argv, env=self.env, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL,
                process_group=0,  # the terminal's Ctrl-C reaches us alone; we stop children in order
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            log.error("%s could not start: %s", slot.child.name, exc)
            slot.proc = None
            self.schedule_restart(slot)
            return
        log.info("%s started pid=%d: %s", slot.child.name, slot.proc.pid, shlex.join(argv[1:]))

    def schedule_restart(self, slot: Running) -> None:
        """Log the exit and pick the restart time: 0.5 s, doubling per quick death, at most 30 s."""
        # Whatever the dead child left in its process group goes too: orphaned uvicorn workers
        # would keep the port, and the new web could not bind it.
        self.kill(slot)
        uptime = time.monotonic() - slot.started_at
        slot.failures = 1 if uptime >= HEALTHY_AFTER_S else slot.failures + 1
        delay = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (slot.failures - 1))
        slot.restart_at = time.monotonic() + delay
        slot.restarts += 1
        code = describe_exit(slot.proc.returncode) if slot.proc else "did not start"
        log.warning(
            "%s %s after %.1fs; restart #%d in %.1fs", slot.child.name, code, uptime, slot.restarts, delay
        )
        slot.proc = None

    def run(self, ready: Callable[[], bool]) -> int:
        """Supervise until a signal; return the exit code (0 graceful, 1 forced)."""
        for slot in self.running:
            self.spawn(slot)
        announced = False
        while not self.stopping:
            now = time.monotonic()
            for slot in self.running:
                if slot.proc is not None and slot.proc.poll() is not None:
                    self.schedule_restart(slot)
                elif slot.proc is None and slot.restart_at is not None and now >= slot.restart_at:
                    self.spawn(slot)
            if not announced and ready():
                announced = True
            time.sleep(TICK_S)
        return self.shutdown()

    def shutdown(self) -> int:
        for slot in reversed(self.running):
            proc = slot.proc
            if proc is None or proc.poll() is not None:
                continue
            log.info("stopping %s pid=%d", slot.child.name, proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            while proc.poll() is None and not self.forced and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None and not self.forced:
                log.warning("%s did not stop within %.1fs: SIGKILL", slot.child.name, self.grace_s)
            self.kill(slot)  # also sweeps up whatever the child left behind in its process group
        if self.forced:
            for slot in self.running:  # the second signal may have come between two children
                self.kill(slot)
        return 1 if self.forced else 0

    @staticmethod
    def kill(slot: Running) -> None:
        """SIGKILL the child's process group (the child and any workers of its own)."""
        proc = slot.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def fresh_prometheus_dir() -> str:
    """An empty directory for prometheus-client's multi-process mode (core/metrics.py): every web
    worker writes its series there and /metrics sums them. Emptied per supervisor run, so the files
    of a previous run never add up."""
    import shutil

    from claudebench import embedded

    path = embedded.DATA_DIR / "prometheus"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


def web_answers(host: str, port: int) -> bool:
    address = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


class Command(BaseCommand):
    help = "Start the engines, migrate, then run and supervise the web server and workers until SIGTERM."
    requires_system_checks = []  # migrate runs them, against the database too

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--processes", default=os.environ.get("CB_UP_PROCESSES", ""),
            help="dotted path of another process table (default: PROCESSES in this module; env CB_UP_PROCESSES)",
        )
        parser.add_argument("--grace", type=float, default=10.0, help="seconds a child gets to exit after SIGTERM")
        parser.add_argument("--no-engines", action="store_true", help="do not start the embedded servers")
        parser.add_argument("--no-setup", action="store_true", help="skip migrate, ensure_operator and hydrate_redis")

    def handle(self, *args, **options) -> None:
        table = load_table(options["processes"]) if options["processes"] else PROCESSES
        started = engines.StartedEngines()
        supervisor = Supervisor(table, self.child_env(table), options["grace"])
        # Until the supervisor loop runs, a signal interrupts set-up; afterwards it stops the children.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            if not options["no_engines"]:
                started = engines.ensure_started(
                    postgres=settings.CB_USES_EMBEDDED_POSTGRES, redis=settings.CB_USES_EMBEDDED_REDIS
                )
                self.say_engines(started)
            if not options["no_setup"]:
                self.setup(options["verbosity"])
            self.check_bind()  # issue 10: an exposed HOST needs an active API token
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, supervisor.on_signal)
            code = supervisor.run(lambda: self.ready(table))
        except KeyboardInterrupt:
            code = 0
            log.info("interrupted during start-up")
        except engines.EngineError as exc:
            raise CommandError(str(exc)) from None
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a third Ctrl-C ends it all
            if not supervisor.forced:
                supervisor.shutdown()  # a no-op unless something escaped the supervisor loop
            stopped = engines.stop(started)  # only if we started them and nobody else uses them
            if stopped:
                names = [name for name, done in (("postgres", stopped.postgres), ("valkey", stopped.redis)) if done]
                log.info("stopped the embedded servers: %s", ", ".join(names))
            elif started.uses:
                log.info("left the embedded servers running (`python -m claudebench.engines status`)")
        log.info("stopped%s", " (forced)" if code else "")
        if code:
            raise CommandError("forced stop", returncode=code)

    @staticmethod
    def check_bind() -> None:
        from claudebench.security.bind import UnsafeBind, check_sync

        try:
            check_sync()
        except UnsafeBind as exc:
            raise CommandError(str(exc)) from None

    @staticmethod
    def child_env(table: tuple[Child, ...]) -> dict[str, str]:
        """One INSTANCE_ID for every child and every restart (SPEC §18.5)."""
        env = dict(os.environ)
        env["INSTANCE_ID"] = settings.INSTANCE_ID
        env.setdefault("DJANGO_SETTINGS_MODULE", "claudebench.settings")
        env["PYTHONUNBUFFERED"] = "1"
        if any(child.name == "background" for child in table):
            # Someone runs `runworker`: the web hands notifications and triggered runs to it.
            env.setdefault("CB_BACKGROUND_HANDOFF", "1")
        if any(child.name == "gossip" for child in table):
            env.setdefault("CB_READY_REQUIRES_GOSSIP", "1")  # /readyz waits for this server's heartbeat
        if "PROMETHEUS_MULTIPROC_DIR" not in env:
            env["PROMETHEUS_MULTIPROC_DIR"] = fresh_prometheus_dir()
        return env

    def say_engines(self, started: engines.StartedEngines) -> None:
        from claudebench import embedded

        for name, wanted, began, url in (
            ("postgres", settings.CB_USES_EMBEDDED_POSTGRES, started.postgres, embedded.DATABASE_URL),
            ("valkey", settings.CB_USES_EMBEDDED_REDIS, started.redis, embedded.REDIS_URL),
        ):
            if wanted:
                log.info("%s %s %s", name, "started" if began else "already running, reused", url)

    def setup(self, verbosity: int) -> None:
        call_command("migrate", interactive=False, verbosity=verbosity)
        call_command("ensure_operator", verbosity=verbosity)
        if settings.CB_HYDRATE_ON_START and "hydrate_redis" in get_commands():
            call_command("hydrate_redis", verbosity=verbosity)
        connections.close_all()  # nothing open crosses into the children

    def ready(self, table: tuple[Child, ...]) -> bool:
        """Log the ready line once the web answers (at once when the table has no web)."""
        has_web = any(child.name == "web" for child in table)
        if has_web and not web_answers(settings.HOST, settings.PORT):
            return False
        url = f"http://{settings.HOST}:{settings.PORT}/" if has_web else "(no web process)"
        log.info(
            "ready %s instance=%s processes=%s pid=%d",
            url, settings.INSTANCE_ID, ",".join(child.name for child in table), os.getpid(),
        )
        return True
