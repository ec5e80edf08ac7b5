"""PostgreSQL on the request path: an async psycopg pool per event loop, SQL built from models.

PERF.md: every async ORM call is a hop to a thread (~1.4 ms), so handler writes go through here
instead — one statement on a pooled connection in autocommit, committed when the call returns.
The schema still comes from the Django models and migrations; columns are read from
`Model._meta`, so a renamed column is renamed once.

Inserts are group-committed. `insert()` hands its row to a batcher of the running event loop,
one per (model, field names in order); the batcher writes every row waiting at that moment in ONE
multi-row `INSERT ... VALUES (..), (..)` on one pooled connection (autocommit, so committed when
it returns), at most `_MAX_BATCH_ROWS` rows a statement and one statement in flight per batcher.
There is no timer: the first row goes on the next loop tick, and rows that arrive while a
statement is in flight go together in the next one. auto_now columns the caller left out are
`now()` in every VALUES tuple (the statement's start time, shared by the rows of one batch). A
caller's await returns only once its own row is committed. When the server rejects a multi-row statement (unique or foreign-key violation,
bad value...), nothing of it was written, so the batcher inserts those rows again one by one and
each caller gets exactly its own outcome; when the outcome is unknown (connection lost) every
caller of that statement gets the error and nothing is retried, so no row is written twice. A
caller cancelled after handing its row over does not stop the statement (its row may be written);
a row whose caller is cancelled before its statement is built is dropped. `close_pool()` waits for
the loop's batchers before closing its pool.

SQL text is rendered once per (model, field names, row count) — and per conflict target for
`upsert()` — and cached, so the request path does not compose SQL on every call.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections, models
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("claudebench.core.pg")

# Rows per multi-row INSERT, and the protocol's limit on parameters per statement.
_MAX_BATCH_ROWS = 100
_MAX_PARAMS = 65_535

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool] = (
    weakref.WeakKeyDictionary()
)


def _conninfo_kwargs() -> dict[str, Any]:
    # Django's own connection parameters (after any test-database rename by the test runner).
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("server_side_binding", None)
    params["autocommit"] = True
    return params


async def get_pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = AsyncConnectionPool(
            kwargs=_conninfo_kwargs(),
            min_size=settings.CB_PG_POOL_MIN,
            max_size=settings.CB_PG_POOL_MAX,
            open=False,
            name="claudebench",
            timeout=settings.CB_PG_POOL_TIMEOUT_S,
        )
        _pools[loop] = pool
        await pool.open()
    return pool


async def close_pool() -> None:
    """Write the rows this loop's batchers still hold, then close this loop's pool."""
    loop = asyncio.get_running_loop()
    await _flush_batchers(loop)
    pool = _pools.pop(loop, None)
    if pool is not None:
        await pool.close()


def _column(model: type[models.Model], name: str) -> tuple[str, models.Field]:
    f = model._meta.get_field(name)
    assert isinstance(f, models.Field)
    return f.column, f


def _adapt(f: models.Field, value: Any) -> Any:
    if isinstance(f, models.JSONField) and value is not None:
        return Jsonb(value)
    return value


def _auto_now(model: type[models.Model]) -> Iterable[str]:
    for f in model._meta.concrete_fields:
        if getattr(f, "auto_now", False):
            yield f.name


def _assignments(model: type[models.Model], fields: dict[str, Any]) -> tuple[list, list]:
    cols, values = [], []
    for name, value in fields.items():
        column, f = _column(model, name)
        cols.append(sql.Identifier(column))
        values.append(_adapt(f, value))
    for name in _auto_now(model):
        if name not in fields:
            column, _ = _column(model, name)
            cols.append(sql.Identifier(column))
            values.append(sql.SQL("now()"))
    return cols, values


def _placeholders(values: list) -> list:
    return [v if isinstance(v, sql.Composable) else sql.Placeholder() for v in values]


def _params(values: list) -> list:
    return [v for v in values if not isinstance(v, sql.Composable)]


async def execute(query: sql.Composable | str, params: Sequence[Any] = ()) -> int:
    pool = await get_pool()
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        return cur.rowcount


async def fetch(query: sql.Composable | str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    pool = await get_pool()
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def table(model: type[models.Model]) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def column(model: type[models.Model], name: str) -> sql.Identifier:
    return sql.Identifier(_column(model, name)[0])


# --- rendered SQL per (model, field names) --------------------------------------------------------
class _Shape:
    """One (model, field names in order): its columns, value adapters and SQL text, rendered once."""

    __slots__ = ("_sql", "cols", "json", "max_rows", "model", "names", "now_cols")

    def __init__(self, model: type[models.Model], names: tuple[str, ...]) -> None:
        self.model = model
        self.names = names
        resolved = [_column(model, name) for name in names]
        self.cols = [c for c, _ in resolved]
        self.json = tuple(isinstance(f, models.JSONField) for _, f in resolved)
        self.now_cols = [_column(model, n)[0] for n in _auto_now(model) if n not in names]
        self.max_rows = max(1, min(_MAX_BATCH_ROWS, _MAX_PARAMS // max(1, len(names))))
        self._sql: dict[Any, str] = {}

    def params(self, fields: dict[str, Any]) -> list[Any]:
        """The row's parameters, in column order (auto_now columns are `now()` in the SQL)."""
        return [Jsonb(v) if j and v is not None else v for v, j in zip(fields.values(), self.json, strict=True)]

    def _head(self) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in [*self.cols, *self.now_cols])
        return sql.SQL("INSERT INTO {} ({}) VALUES ").format(table(self.model), cols)

    def _row(self) -> sql.Composed:
        items = [sql.Placeholder()] * len(self.cols) + [sql.SQL("now()")] * len(self.now_cols)
        return sql.SQL("({})").format(sql.SQL(", ").join(items))

    def insert_sql(self, rows: int) -> str:
        text = self._sql.get(rows)
        if text is None:
            query = self._head() + sql.SQL(", ").join([self._row()] * rows)
            text = self._sql[rows] = query.as_string(None)
        return text

    def upsert_sql(self, conflict: tuple[str, ...]) -> str:
        key = ("upsert", conflict)
        text = self._sql.get(key)
        if text is None:
            conflict_names = [_column(self.model, name)[0] for name in conflict]
            updates = [
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n in [*self.cols, *self.now_cols] if n not in conflict_names
            ]
            query = self._head() + sql.SQL("{} ON CONFLICT ({}) DO UPDATE SET {}").format(
                self._row(), sql.SQL(", ").join(sql.Identifier(n) for n in conflict_names),
                sql.SQL(", ").join(updates),
            )
            text = self._sql[key] = query.as_string(None)
        return text


_shapes: dict[tuple[type[models.Model], tuple[str, ...]], _Shape] = {}


def _shape(model: type[models.Model], names: tuple[str, ...]) -> _Shape:
    shape = _shapes.get((model, names))
    if shape is None:
        shape = _shapes[(model, names)] = _Shape(model, names)
    return shape


# --- group commit of inserts ---------------------------------------------------------------------
def _nothing_written(exc: BaseException) -> bool:
    """True when a failed INSERT certainly wrote none of its rows, so they may be tried again: the
    server rejected the statement (in autocommit the whole statement is rolled back), or psycopg
    refused a value before sending anything. A lost connection leaves the outcome unknown."""
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate:
            return not exc.sqlstate.startswith("08")  # class 08: connection exception
        return not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return isinstance(exc, TypeError | ValueError | OverflowError)  # adaptation, before sending


def _resolve(fut: asyncio.Future[None], exc: BaseException | None = None) -> None:
    if fut.done():  # its caller was cancelled; the others still get their outcome
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


class _Batcher:
    """The rows of one shape waiting on one event loop, and the tasks writing them: up to
    IN_FLIGHT statements at once, so a row rarely waits for a whole statement before its own."""

    IN_FLIGHT = 2
    __slots__ = ("pending", "shape", "tasks")

    def __init__(self, shape: _Shape) -> None:
        self.shape = shape
        self.pending: deque[tuple[list[Any], asyncio.Future[None]]] = deque()
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, params: list[Any]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.pending.append((params, fut))
        if len(self.tasks) < self.IN_FLIGHT:
            task = loop.create_task(self._run(), name=f"pg-insert:{self.shape.model._meta.db_table}")
            self.tasks.add(task)
            task.add_done_callback(self._finished)
        return fut

    def _finished(self, task: asyncio.Task[None]) -> None:
        # Also for a task cancelled before it ever ran (its `finally` never did): free its slot,
        # and if no writer is left for the waiting rows, fail them rather than strand them.
        self.tasks.discard(task)
        if task.cancelled() and not self.tasks and self.pending:
            lost = psycopg.OperationalError("insert batch cancelled; the row may not have been written")
            for _, fut in self.pending:
                _resolve(fut, lost)
            self.pending.clear()

    def _take(self) -> list[tuple[list[Any], asyncio.Future[None]]]:
        batch: list[tuple[list[Any], asyncio.Future[None]]] = []
        while self.pending and len(batch) < self.shape.max_rows:
            params, fut = self.pending.popleft()
            if not fut.done():  # cancelled before its statement was built: not written
                batch.append((params, fut))
        return batch

    async def _run(self) -> None:
        batch: list[tuple[list[Any], asyncio.Future[None]]] = []
        try:
            # No await between the last check of `pending` and the end of the task; a row
            # submitted meanwhile starts a task of its own when fewer than IN_FLIGHT run.
            while self.pending:
                batch = self._take()
                if batch:
                    try:
                        await self._write(batch)
                    except Exception as exc:  # a bug here must not strand callers or stop later batches
                        log.exception("insert batch into %s failed", self.shape.model._meta.db_table)
                        for _, fut in batch:
                            _resolve(fut, exc)
                batch = []
        except asyncio.CancelledError:
            # The loop is shutting down (or someone cancelled this task): the statement in flight
            # may or may not have been committed, and nobody will write the waiting rows.
            lost = psycopg.OperationalError("insert batch cancelled; the row may not have been written")
            for _, fut in [*batch, *self.pending]:
                _resolve(fut, lost)
            self.pending.clear()
            raise
        finally:
            # Synchronously, right after the last look at `pending`: a later submit() sees the
            # true number of writers and starts one.
            self.tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _write(self, batch: list[tuple[list[Any], asyncio.Future[None]]]) -> None:
        shape = self.shape
        if len(batch) > 1:
            try:
                await execute(shape.insert_sql(len(batch)), [p for params, _ in batch for p in params])
            except Exception as exc:
                if not _nothing_written(exc):
                    for _, fut in batch:
                        _resolve(fut, exc)
                    return
                log.debug("multi-row insert into %s rejected (%s); inserting its %d rows one by one",
                          shape.model._meta.db_table, exc, len(batch))
            else:
                for _, fut in batch:
                    _resolve(fut)
                return
        single = shape.insert_sql(1)
        for params, fut in batch:
            try:
                await execute(single, params)
            except Exception as exc:
                _resolve(fut, exc)
            else:
                _resolve(fut)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Shape, _Batcher]] = (
    weakref.WeakKeyDictionary()
)


def _batcher(shape: _Shape) -> _Batcher:
    loop = asyncio.get_running_loop()
    per_loop = _batchers.get(loop)
    if per_loop is None:
        per_loop = _batchers[loop] = {}
    batcher = per_loop.get(shape)
    if batcher is None:
        batcher = per_loop[shape] = _Batcher(shape)
    return batcher


async def _flush_batchers(loop: asyncio.AbstractEventLoop) -> None:
    per_loop = _batchers.pop(loop, None)
    if per_loop:
        tasks = [t for b in per_loop.values() for t in b.tasks]
        if tasks:
            # A statement stuck on a server that stopped answering must not hold the shutdown:
            # past the pool timeout its writers are cancelled (their callers get an error).
            _, stuck = await asyncio.wait(tasks, timeout=settings.CB_PG_POOL_TIMEOUT_S)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)


async def insert(model: type[models.Model], fields: dict[str, Any]) -> None:
    """Insert one row; returns once it is committed (group-committed with concurrent inserts of
    the same model and field names), or raises the error of this row."""
    shape = _shape(model, tuple(fields))
    await _batcher(shape).submit(shape.params(fields))


async def upsert(model: type[models.Model], fields: dict[str, Any], *, conflict: Sequence[str] = ("id",)) -> None:
    shape = _shape(model, tuple(fields))
    await execute(shape.upsert_sql(tuple(conflict)), shape.params(fields))


async def update(model: type[models.Model], pk: Any, fields: dict[str, Any]) -> int:
    cols, values = _assignments(model, fields)
    sets = [sql.SQL("{} = {}").format(c, p) for c, p in zip(cols, _placeholders(values), strict=True)]
    query = sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(
        table(model), sql.SQL(", ").join(sets), column(model, model._meta.pk.name)
    )
    return await execute(query, [*_params(values), pk])


async def delete(model: type[models.Model], pk: Any) -> int:
    query = sql.SQL("DELETE FROM {} WHERE {} = %s").format(table(model), column(model, model._meta.pk.name))
    return await execute(query, [pk])


async def ping(timeout_s: float = 2.0) -> bool:
    """True when PostgreSQL answers SELECT 1 within the timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            await execute("SELECT 1")
        return True
    except Exception:  # any failure to reach the server means "not reachable" here
        return False
