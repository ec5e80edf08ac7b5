"""Operator tools of the system domain: flush, Redis and PostgreSQL inspection (SPEC §5.3.3).

All but system.flush are hidden from MCP (SPEC §2.7). Each inspection publishes a `.…` event on
success and an `.error` event on failure, then re-raises (SPEC §4.8).
"""

from __future__ import annotations

import logging

from django.conf import settings
from psycopg import sql
from redis.exceptions import RedisError

from claudebench.core import keys, pg
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.errors import HandlerError, InvalidParams, Unauthorized
from claudebench.core.pipeline import Ctx
from claudebench.core.redis import unlink_matching
from claudebench.core.registry import Limits, Mcp, handler
from instances import inspection
from instances.schemas import (
    FlushedPostgres,
    FlushedRedis,
    PgTable,
    QueryColumn,
    QueryInfo,
    RedisKeyMetadata,
    SystemFlushIn,
    SystemFlushOut,
    SystemPostgresQueryIn,
    SystemPostgresQueryOut,
    SystemPostgresTablesIn,
    SystemPostgresTablesOut,
    SystemRedisGetIn,
    SystemRedisGetOut,
    SystemRedisKeysIn,
    SystemRedisKeysOut,
)
from tasks.models import Task

log = logging.getLogger("claudebench.instances")


@handler(
    "system.redis.keys", input=SystemRedisKeysIn, output=SystemRedisKeysOut, declared_rate_limit=50,
    scope="admin",  # issue 10: dangerous, admin tokens only
    mutating=False, cache_ttl_s=60, limits=Limits(rate=50, timeout_ms=10_000, trip_after=5, open_ms=30_000),
    fallback=lambda data: {"keys": [], "cursor": 0, "pattern": data.pattern}, mcp=Mcp(visible=False),
)
async def system_redis_keys(ctx: Ctx, data: SystemRedisKeysIn) -> SystemRedisKeysOut:
    """One SCAN step over the key space (cursor 0 starts, a returned 0 means done)."""
    r = ctx.redis
    try:
        cursor, found = await r.scan(cursor=data.cursor, match=data.pattern, count=data.count)
        total = await r.dbsize() if data.cursor == 0 and data.pattern == "*" else None
        by_type = None
        if len(found) <= 50:
            async with r.pipeline(transaction=False) as pipe:
                for key in found:
                    pipe.type(key)
                by_type = dict(zip(found, await pipe.execute(), strict=True))
    except RedisError as exc:
        await ctx.publish("system.redis.keys.error", {"pattern": data.pattern, "error": str(exc),
                                                      "cursor": data.cursor})
        raise HandlerError(f"Failed to scan Redis keys: {exc}") from exc
    await ctx.publish("system.redis.keys.scanned", {"pattern": data.pattern, "keysFound": len(found),
                                                    "cursor": int(cursor), "keyTypes": by_type or {}})
    return SystemRedisKeysOut(keys=found, cursor=int(cursor), pattern=data.pattern, total=total,
                              keys_by_type=by_type)


@handler(
    "system.redis.get", input=SystemRedisGetIn, output=SystemRedisGetOut, declared_rate_limit=100,
    scope="admin",  # issue 10: dangerous, admin tokens only
    mutating=False, cache_ttl_s=30, limits=Limits(rate=100, timeout_ms=8_000, trip_after=5, open_ms=30_000),
    fallback=lambda data: {"key": data.key, "exists": False, "type": "none", "ttl": -2, "size": 0, "data": None},
    mcp=Mcp(visible=False),
)
async def system_redis_get(ctx: Ctx, data: SystemRedisGetIn) -> SystemRedisGetOut:
    """Inspect one key: type, TTL, size and its value (lists, sets, streams: the first `limit`)."""
    r = ctx.redis
    try:
        kind = await r.type(data.key)
        if kind == "none":
            out = SystemRedisGetOut(key=data.key, exists=False, type="none", ttl=-2, size=0, data=None)
        else:
            size, value = await inspection.redis_value(r, data.key, kind, data.format, data.limit)
            ttl = await r.ttl(data.key)
            encoding = await r.object("encoding", data.key)
            memory = await r.memory_usage(data.key)
            out = SystemRedisGetOut(key=data.key, exists=True, type=kind, ttl=ttl, size=size, data=value,
                                    metadata=RedisKeyMetadata(encoding=encoding, memory=memory))
    except RedisError as exc:
        await ctx.publish("system.redis.get.error", {"key": data.key, "error": str(exc)})
        raise HandlerError(f"Failed to read Redis key {data.key}: {exc}") from exc
    await ctx.publish("system.redis.get.inspected", {"key": data.key, "type": out.type, "size": out.size,
                                                     "hasData": out.data is not None})
    return out


@handler(
    "system.postgres.tables", input=SystemPostgresTablesIn, output=SystemPostgresTablesOut,
    declared_rate_limit=30, mutating=False, cache_ttl_s=120,
    limits=Limits(rate=30, timeout_ms=15_000, trip_after=3, open_ms=60_000),
    fallback=lambda data: {"tables": [], "schema": data.schema_, "totalTables": 0}, mcp=Mcp(visible=False),
)
async def system_postgres_tables(ctx: Ctx, data: SystemPostgresTablesIn) -> SystemPostgresTablesOut:
    """Tables (and optionally views) of a schema with their columns, indexes and constraints."""
    schema = data.schema_
    if not data.include_system_tables and schema in ("pg_catalog", "information_schema"):
        raise InvalidParams(f"Schema {schema} is a system schema; set includeSystemTables to list it",
                            data=[{"code": "custom", "path": ["schema"], "message": "system schema"}])
    try:
        tables = await inspection.postgres_tables(schema=schema, include_views=data.include_views)
    except Exception as exc:
        await ctx.publish("system.postgres.tables.error", {"schema": schema, "error": str(exc)})
        raise HandlerError(f"Failed to list tables: {exc.__class__.__name__}") from exc
    await ctx.publish("system.postgres.tables.listed", {
        "schema": schema, "tablesFound": len(tables), "includeViews": data.include_views,
        "includeSystemTables": data.include_system_tables})
    return SystemPostgresTablesOut(tables=[PgTable.model_validate(t) for t in tables], schema_=schema,
                                   total_tables=len(tables))


def _refuse(field: str, message: str) -> InvalidParams:
    return InvalidParams(message, data=[{"code": "custom", "path": [field], "message": message}])


@handler(
    "system.postgres.query", input=SystemPostgresQueryIn, output=SystemPostgresQueryOut, declared_rate_limit=50,
    scope="admin",  # issue 10: dangerous, admin tokens only
    mutating=False, cache_ttl_s=60, limits=Limits(rate=50, timeout_ms=20_000, trip_after=5, open_ms=60_000),
    mcp=Mcp(visible=False),
)
async def system_postgres_query(ctx: Ctx, data: SystemPostgresQueryIn) -> SystemPostgresQueryOut:
    """SELECT rows of one table, read-only and under a statement timeout (SPEC §16 row 54)."""
    schema, table = data.schema_, data.table
    for column in data.columns or []:
        if not inspection.IDENTIFIER.match(column):
            raise _refuse("columns", f"Invalid column name: {column}")
    if data.where is not None and inspection.dangerous(data.where):
        raise _refuse("where", "WHERE clause contains potentially dangerous SQL constructs")
    if data.order_by is not None and inspection.dangerous(data.order_by):
        raise _refuse("orderBy", "ORDER BY clause contains potentially dangerous SQL constructs")
    try:
        known = await inspection.postgres_columns(schema=schema, table=table)
        if not known:
            raise HandlerError(f'Table "{schema}"."{table}" not found or has no accessible columns')
        wanted = data.columns or [c["name"] for c in known]
        types = {c["name"]: c["type"] for c in known}
        query = sql.SQL("SELECT {} FROM {}.{}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in data.columns) if data.columns else sql.SQL("*"),
            sql.Identifier(schema), sql.Identifier(table))
        if data.where:
            query += sql.SQL(" WHERE ") + sql.SQL(data.where)  # checked above; read-only + timeout below
        if data.order_by:
            query += sql.SQL(" ORDER BY ") + sql.SQL(data.order_by)
        query += sql.SQL(" LIMIT {} OFFSET {}").format(sql.Literal(data.limit), sql.Literal(data.offset))
        rows, elapsed, text = await inspection.postgres_select(query, pretty=data.format == "pretty")
    except HandlerError as exc:
        await ctx.publish("system.postgres.query.error", {"table": table, "schema": schema, "error": exc.detail})
        raise
    await ctx.publish("system.postgres.query.executed", {
        "table": table, "schema": schema, "rowsReturned": len(rows), "executionTime": elapsed,
        "hasWhere": bool(data.where)})
    return SystemPostgresQueryOut(
        table=table, schema_=schema, columns=[QueryColumn(name=c, type=types.get(c, "unknown")) for c in wanted],
        rows=rows, total_rows=len(rows), has_more=len(rows) == data.limit, execution_time=elapsed,
        query_info=QueryInfo(sql=text, parameters=[]),
    )


@handler(
    "system.flush", input=SystemFlushIn, output=SystemFlushOut, declared_rate_limit=1,
    scope="admin",  # issue 10: dangerous, admin tokens only
    mcp=Mcp(visible=True, title="Flush all data", tags=("system", "danger"),
            warnings=("Deletes every ClaudeBench key in Redis and, by default, every task in PostgreSQL",)),
)
async def system_flush(ctx: Ctx, data: SystemFlushIn) -> SystemFlushOut:
    """Delete all ClaudeBench data (requires confirm FLUSH_ALL_DATA and CB_ALLOW_FLUSH)."""
    if not settings.CB_ALLOW_FLUSH:
        raise Unauthorized("system.flush is disabled on this server (CB_ALLOW_FLUSH=false)")
    r, deleted = ctx.redis, 0
    for pattern in keys.FLUSH_PATTERNS:
        deleted += await unlink_matching(r, pattern)
    postgres = None
    if data.include_postgres:
        try:
            postgres = FlushedPostgres(tasks_deleted=await pg.execute(sql.SQL("DELETE FROM {}").format(pg.table(Task))))
        except Exception:  # SPEC §5.3.3: PostgreSQL trouble reports 0 rows, the Redis flush stands
            log.exception("system.flush could not delete PostgreSQL tasks")
            postgres = FlushedPostgres(tasks_deleted=0)
    timestamp = iso_ms(now_ms())
    await ctx.publish("system.flushed", {"redis": deleted, "postgres": postgres.tasks_deleted if postgres else None,
                                         "timestamp": timestamp})
    return SystemFlushOut(redis=FlushedRedis(keys_deleted=deleted, patterns=list(keys.FLUSH_PATTERNS)),
                          postgres=postgres, timestamp=timestamp)
