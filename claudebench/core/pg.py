"""PostgreSQL on the request path: an async psycopg pool per event loop, SQL built from models.

PERF.md: every async ORM call is a hop to a thread (~1.4 ms), so handler writes go through here
instead — one statement on a pooled connection in autocommit, committed when the call returns.
The schema still comes from the Django models and migrations; columns are read from
`Model._meta`, so a renamed column is renamed once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import connections, models
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

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
    loop = asyncio.get_running_loop()
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


async def insert(model: type[models.Model], fields: dict[str, Any]) -> None:
    cols, values = _assignments(model, fields)
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table(model), sql.SQL(", ").join(cols), sql.SQL(", ").join(_placeholders(values))
    )
    await execute(query, _params(values))


async def upsert(model: type[models.Model], fields: dict[str, Any], *, conflict: Sequence[str] = ("id",)) -> None:
    cols, values = _assignments(model, fields)
    conflict_cols = [column(model, name) for name in conflict]
    conflict_names = {_column(model, name)[0] for name in conflict}
    names = [_column(model, n)[0] for n in fields] + [
        _column(model, n)[0] for n in _auto_now(model) if n not in fields
    ]  # the same order as cols (psycopg's Identifier exposes no public name)
    updates = [
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
        for n in names if n not in conflict_names
    ]
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
        table(model), sql.SQL(", ").join(cols), sql.SQL(", ").join(_placeholders(values)),
        sql.SQL(", ").join(conflict_cols), sql.SQL(", ").join(updates),
    )
    await execute(query, _params(values))


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
