"""Idempotency helpers for at-least-once subscribers: an event may be delivered twice (a consumer
killed after the effect but before XACK), so its effect must happen once per event id.

- PostgreSQL effects: a unique column holding the event id and `INSERT … ON CONFLICT DO NOTHING`
  (the audit drain does this; `pg_insert_once`).
- Redis effects: `apply_once(scope, event, effects)` queues the effects and a done-marker in one
  MULTI guarded by WATCH on the marker, so they happen together or not at all, and never twice.
  (A Lua script cannot take arbitrary subscriber effects; this is the one place WATCH is right.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import models
from psycopg import sql
from redis.exceptions import WatchError

from claudebench.core import keys, pg
from claudebench.core.redis import get_redis
from events.types import Event


async def already_done(scope: str, event: Event | str) -> bool:
    event_id = event if isinstance(event, str) else event.id
    return bool(await get_redis().exists(keys.bus_done(scope, event_id)))


async def apply_once(scope: str, event: Event | str, effects: Callable[[Any], None], *,
                     ttl_s: int | None = None) -> bool:
    """Run `effects(pipe)` (which queues Redis commands) once per (scope, event id).

    Returns False when the event was already applied (by this or another consumer)."""
    event_id = event if isinstance(event, str) else event.id
    marker = keys.bus_done(scope, event_id)
    async with get_redis().pipeline(transaction=True) as pipe:
        await pipe.watch(marker)
        if await pipe.exists(marker):
            return False
        pipe.multi()
        effects(pipe)
        pipe.set(marker, "1", ex=ttl_s or settings.CB_BUS_DONE_TTL_S)
        try:
            await pipe.execute()
        except WatchError:
            return False
    return True


async def pg_insert_once(model: type[models.Model], rows: Iterable[dict[str, Any]], *,
                         unique: Sequence[str]) -> int:
    """INSERT many rows in one statement, skipping those whose `unique` columns exist already.

    Returns the number of rows actually inserted."""
    rows = list(rows)
    if not rows:
        return 0
    names = list(rows[0])
    cols = [pg.column(model, n) for n in names]
    fields = [model._meta.get_field(n) for n in names]
    values, params = [], []
    for row in rows:
        values.append(sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(names))))
        params += [pg._adapt(f, row[n]) for f, n in zip(fields, names, strict=True)]
    query = sql.SQL("INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING").format(
        pg.table(model), sql.SQL(", ").join(cols), sql.SQL(", ").join(values),
        sql.SQL(", ").join(pg.column(model, n) for n in unique),
    )
    return await pg.execute(query, params)
