"""Read-only inspection of Redis and PostgreSQL for the operator handlers (SPEC §5.3.3).

system.postgres.query keeps the original's deny-list and identifier rule, and adds what the
deny-list cannot promise (SPEC §16 row 54): the statement runs in a READ ONLY transaction with a
statement timeout, so a WHERE clause can neither write nor run for long.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime
from typing import Any

import orjson
from django.conf import settings
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row
from redis.asyncio import Redis

from claudebench.core import pg
from claudebench.core.clock import iso_ms, ms_from_dt
from claudebench.core.errors import HandlerError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DANGEROUS = re.compile(
    r"\b(DROP|DELETE|UPDATE|INSERT|CREATE|ALTER|TRUNCATE|UNION|EXEC|EXECUTE|GRANT|REVOKE|COPY)\b"
    r"|;|--|/\*|\*/|\bxp_\w*|\bsp_\w*",
    re.IGNORECASE,
)


def dangerous(clause: str) -> bool:
    """The original's deny-list (SPEC §5.3.3), a little wider: any ';', comment, or write keyword."""
    return bool(_DANGEROUS.search(clause))


# --- Redis ------------------------------------------------------------------------------------------
def _maybe_json(value: str, fmt: str) -> Any:
    if fmt == "raw":
        return value
    text = value.strip()
    if (text.startswith("{") and text.endswith("}")) or (text.startswith("[") and text.endswith("]")):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return value
    return value


async def redis_value(r: Redis, key: str, kind: str, fmt: str, limit: int) -> tuple[int, Any]:
    """(size, data) of one key by type (SPEC §5.3.3 system.redis.get)."""
    if kind == "string":
        value = await r.get(key) or ""
        return len(value), _maybe_json(value, fmt) if fmt != "raw" else value
    if kind == "hash":
        h = await r.hgetall(key)
        return len(h), {f: _maybe_json(v, fmt) for f, v in h.items()}
    if kind == "list":
        total = await r.llen(key)
        items = [_maybe_json(v, fmt) for v in await r.lrange(key, 0, limit - 1)]
        return total, {"items": items, "total": total, "showing": len(items), "hasMore": total > len(items)}
    if kind == "set":
        total = await r.scard(key)
        members = sorted(await r.srandmember(key, limit) if total > limit else await r.smembers(key))
        return total, {"members": members, "total": total, "showing": len(members), "hasMore": total > len(members)}
    if kind == "zset":
        total = await r.zcard(key)
        rows = await r.zrevrange(key, 0, limit - 1, withscores=True)
        items = [{"member": m, "score": s} for m, s in rows]
        return total, {"items": items, "total": total, "showing": len(items), "hasMore": total > len(items)}
    if kind == "stream":
        total = await r.xlen(key)
        entries = [{"id": i, "fields": {f: _maybe_json(v, fmt) for f, v in fields.items()}}
                   for i, fields in await r.xrevrange(key, count=limit)]
        return total, {"entries": entries, "total": total, "showing": len(entries), "hasMore": total > len(entries)}
    return 0, None


# --- PostgreSQL ---------------------------------------------------------------------------------------
_TABLES = """
SELECT c.relname AS name, n.nspname AS schema,
       CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view' ELSE 'table' END AS type,
       c.reltuples::bigint AS row_estimate, pg_total_relation_size(c.oid) AS size_bytes, c.oid AS oid
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind = ANY(%s)
ORDER BY c.relname
"""
_COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS default_value,
       COALESCE(a.attnum = ANY(p.conkey), false) AS is_primary_key
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_constraint p ON p.conrelid = a.attrelid AND p.contype = 'p'
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_INDEXES = """
SELECT i.relname AS name, ix.indisunique AS unique, ix.indisprimary AS primary,
       ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.num ORDER BY k.ord) AS columns
FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid
WHERE ix.indrelid = %s ORDER BY i.relname
"""
_CONSTRAINTS = """
SELECT conname AS name,
       CASE contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'f' THEN 'FOREIGN KEY' WHEN 'u' THEN 'UNIQUE'
                    WHEN 'c' THEN 'CHECK' ELSE contype::text END AS type,
       pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE conrelid = %s ORDER BY conname
"""


async def postgres_tables(*, schema: str, include_views: bool) -> list[dict[str, Any]]:
    kinds = ["r", "p"] + (["v", "m"] if include_views else [])
    out = []
    for t in await pg.fetch(_TABLES, [schema, kinds]):
        oid = t.pop("oid")
        estimate = t.pop("row_estimate")
        t["row_count"] = max(int(estimate), 0) if estimate is not None else None
        t["columns"] = await pg.fetch(_COLUMNS, [oid])
        if t["type"] != "view":
            t["indexes"] = await pg.fetch(_INDEXES, [oid])
            t["constraints"] = await pg.fetch(_CONSTRAINTS, [oid])
        out.append(t)
    return out


async def postgres_columns(*, schema: str, table: str) -> list[dict[str, str]]:
    return await pg.fetch(
        "SELECT column_name AS name, data_type AS type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", [schema, table])


def _pretty(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_ms(ms_from_dt(value))
    if isinstance(value, date):
        return value.isoformat()
    return value


class QueryTimedOut(HandlerError):
    """The statement ran past CB_PG_QUERY_TIMEOUT_MS and PostgreSQL cancelled it."""


async def postgres_select(query: sql.Composed, *, pretty: bool) -> tuple[list[dict[str, Any]], float, str]:
    """Run one SELECT read-only with a statement timeout. Returns (rows, ms, sql text)."""
    timeout_ms = settings.CB_PG_QUERY_TIMEOUT_MS
    pool = await pg.get_pool()
    started = time.perf_counter()
    async with pool.connection() as conn:
        text = query.as_string(conn)
        try:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION READ ONLY")
                await conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms)))
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(query)
                    rows = await cur.fetchall()
        except pg_errors.QueryCanceled:
            raise QueryTimedOut(f"Query cancelled: it ran longer than the {timeout_ms} ms statement timeout") from None
        except pg_errors.ReadOnlySqlTransaction as exc:
            raise HandlerError(f"Query refused: it tried to write ({exc.diag.message_primary})") from None
        except pg_errors.Error as exc:
            raise HandlerError(f"Query failed: {exc.diag.message_primary or exc.__class__.__name__}") from None
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    if pretty:
        rows = [{k: _pretty(v) for k, v in row.items()} for row in rows]
    return rows, elapsed, text
