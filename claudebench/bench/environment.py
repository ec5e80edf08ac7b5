"""Where the bench's servers keep their data, away from the operator's.

Servers the bench starts run against Redis database CB_BENCH_REDIS_DB (default 15) of the same
Redis and the PostgreSQL database `claudebench_bench` of the same PostgreSQL, so their figures
come from the same engines as production. The bench FLUSHDBs its Redis database and truncates its
PostgreSQL tables before and after a run; it never FLUSHALLs and never writes the operator's
databases. With DATABASE_URL / REDIS_URL unset it starts the embedded engines first (and stops
the ones it started). Redis pub/sub ignores database numbers: a product server under benchmark
publishes its events (task.created, ...) on the shared Redis like any other server would.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from claudebench import embedded
from claudebench.env import env_int

BENCH_DATABASE = "claudebench_bench"
_KEEP_TABLES = ("django_migrations", "django_content_type", "auth_permission")
# Needs a benchmark or ceiling can declare.
REDIS, POSTGRES, MIGRATIONS, CEILING_TABLE = "redis", "postgres", "migrations", "ceiling_table"


def _unsplit(parts: SplitResult) -> str:
    """urlunsplit that keeps `//` when the authority is empty (unix:///path, postgresql:///db)."""
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}{query}{fragment}"


class SetupFailed(RuntimeError):
    """The bench could not prepare its databases (engines down, migrate failed, ...)."""


def with_redis_db(url: str, db: int) -> str:
    """`url` pointing at database `db` (redis:// takes it in the path, unix:// in ?db=)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "db"]
    if parts.scheme == "unix":
        query.append(("db", str(db)))
        return _unsplit(parts._replace(query=urlencode(query)))
    return _unsplit(parts._replace(path=f"/{db}", query=urlencode(query)))


def redis_db_of(url: str) -> int:
    """The database number a Redis URL selects (0 when it names none)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if "db" in query:
        return int(query["db"])
    path = parts.path.strip("/")
    if parts.scheme != "unix" and path:
        return int(path)
    return 0


def with_database(url: str, name: str) -> str:
    """A postgres:// URL naming database `name` instead of its own (socket host/port kept)."""
    return _unsplit(urlsplit(url)._replace(path=f"/{name}"))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@dataclass
class BenchEnv:
    """The bench's Redis and PostgreSQL addresses and the environment its servers run with."""

    redis_url: str
    database_url: str
    needs: frozenset[str]
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started_engines: Any = None
    lock: IO[str] | None = None

    def child_env(self, **extra: str) -> dict[str, str]:
        """Environment for a server subprocess: the bench databases and production knobs."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            DJANGO_SETTINGS_MODULE="claudebench.settings",
            INSTANCE_ID=f"bench-{self.token}",
            PYTHONUNBUFFERED="1",
            # The ceilings size their pools exactly as production does.
            CB_REDIS_MAX_CONNECTIONS=str(settings.CB_REDIS_MAX_CONNECTIONS),
            CB_PG_POOL_MIN=str(settings.CB_PG_POOL_MIN),
            CB_PG_POOL_MAX=str(settings.CB_PG_POOL_MAX),
        )
        env.update(extra)
        return env


def _operator_urls() -> tuple[str, str]:
    redis_url = os.environ.get("REDIS_URL") or embedded.REDIS_URL
    database_url = os.environ.get("DATABASE_URL") or embedded.DATABASE_URL
    return redis_url, database_url


def _start_engines(needs: frozenset[str]) -> Any:
    want_pg = bool(needs & {POSTGRES, MIGRATIONS, CEILING_TABLE}) and not os.environ.get("DATABASE_URL")
    want_redis = REDIS in needs and not os.environ.get("REDIS_URL")
    if not (want_pg or want_redis):
        return None
    from claudebench import engines

    return engines.ensure_started(postgres=want_pg, redis=want_redis)


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()  # this database only; never FLUSHALL
    finally:
        client.close()


def _ensure_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SetupFailed(f"migrate into {BENCH_DATABASE} failed:\n{done.stdout}{done.stderr}")


def _truncate_tables(database_url: str, drop: Iterable[str] = ()) -> None:
    """Empty the bench database's tables, keeping what `migrate` wrote (migrations, content
    types, permissions); drop the tables named in `drop`."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in drop:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND NOT (tablename = ANY(%s))",
                (list(_KEEP_TABLES),),
            )
        ]
        if tables:
            names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))


def _create_ceiling_table(database_url: str) -> None:
    import psycopg

    from claudebench.bench.ceiling_app import CREATE_TABLE_SQL

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(CREATE_TABLE_SQL)


def _take_run_lock(redis_url: str, database_url: str, say: Callable[[str], None]) -> IO[str]:
    """One bench run at a time per pair of engines: runs would flush each other's data (and
    share the cores). A second run waits for the first; the OS releases the lock if one dies."""
    digest = hashlib.sha256(f"{redis_url} {database_url}".encode()).hexdigest()[:12]
    lock = open(os.path.join(tempfile.gettempdir(), f"claudebench-bench-{digest}.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another bench run uses these engines; waiting for it to finish")
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def prepare(needs: Iterable[str], say: Callable[[str], None]) -> BenchEnv:
    """Start engines if needed, point at the bench databases, and start them empty."""
    needs = frozenset(needs)
    operator_redis, operator_database = _operator_urls()
    bench_db = env_int("CB_BENCH_REDIS_DB", 15, minimum=0)
    if redis_db_of(operator_redis) == bench_db:
        raise ImproperlyConfigured(
            f"REDIS_URL already uses database {bench_db}; set CB_BENCH_REDIS_DB to a database "
            "the server does not use"
        )
    if database_of(operator_database) == BENCH_DATABASE:
        raise ImproperlyConfigured(f"DATABASE_URL already names {BENCH_DATABASE}; the bench needs its own")
    env = BenchEnv(
        redis_url=with_redis_db(operator_redis, bench_db),
        database_url=with_database(operator_database, BENCH_DATABASE),
        needs=needs,
    )
    env.lock = _take_run_lock(env.redis_url, env.database_url, say)
    try:
        env.started_engines = _start_engines(needs)
        if REDIS in needs:
            _flush_redis(env.redis_url)
            say(f"redis: database {bench_db} flushed")
        if needs & {POSTGRES, MIGRATIONS, CEILING_TABLE}:
            _ensure_database(env.database_url)
            if MIGRATIONS in needs:
                say(f"postgres: migrating {BENCH_DATABASE}")
                _migrate(env.child_env())
            _truncate_tables(env.database_url)
            if CEILING_TABLE in needs:
                _create_ceiling_table(env.database_url)
            say(f"postgres: {BENCH_DATABASE} ready and empty")
    except BaseException as exc:
        cleanup(env, say)
        if isinstance(exc, SetupFailed) or not isinstance(exc, Exception):
            raise
        raise SetupFailed(f"bench set-up failed: {type(exc).__name__}: {exc}") from exc
    return env


def cleanup(env: BenchEnv, say: Callable[[str], None]) -> None:
    """Leave the bench databases empty and stop the engines the bench started."""
    from claudebench.bench.ceiling_app import TABLE

    try:
        if REDIS in env.needs:
            _flush_redis(env.redis_url)
        if env.needs & {POSTGRES, MIGRATIONS, CEILING_TABLE}:
            _truncate_tables(env.database_url, drop=[TABLE])
        say("bench data removed")
    except Exception as exc:  # an engine that never came up: report it, still release the rest
        say(f"could not remove bench data: {type(exc).__name__}: {exc}")
    finally:
        try:
            if env.started_engines is not None:
                from claudebench import engines

                engines.stop(env.started_engines)
        finally:
            if env.lock is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(env.lock, fcntl.LOCK_UN)
                env.lock.close()
