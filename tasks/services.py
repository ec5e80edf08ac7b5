"""Reusable task functions: Redis reads, PostgreSQL writes and queries (STYLE §4).

Services never publish events; handlers do, after the PostgreSQL write has returned.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from psycopg import sql
from redis.asyncio import Redis

from claudebench.core import keys, pg, scripts
from claudebench.core.clock import dt_from_ms, iso_ms, now_ms, parse_iso, random_base36
from tasks.models import Task, TaskAttachment

log = logging.getLogger("claudebench.tasks")

RETRIES = 8


class _Ids:
    """The last `t-<N>` this process proposed. Proposals are reserved before the first await, so
    concurrent calls in one process never propose the same N; the script arbitrates between
    processes (SPEC §16 row 18)."""

    last = 0


def propose_number(at_least: int) -> int:
    number = max(at_least, _Ids.last + 1)
    _Ids.last = number
    return number


def saw_number(number: int) -> None:
    """An id the script handed out (maybe above our proposal: other processes moved the counter);
    the next proposal starts above it."""
    if number > _Ids.last:
        _Ids.last = number


def iso_dt(value: datetime | None) -> str | None:
    return None if value is None else iso_ms(int(value.timestamp() * 1000))


def json_or_none(text: str | None) -> Any:
    """Parse a JSON string kept in a Redis hash field; '' and invalid JSON become None."""
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def stored_result(value: Any) -> Any:
    """SPEC §5.3.1: a string result that parses as JSON is stored parsed."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


async def task_hash(r: Redis, task_id: str) -> dict[str, str]:
    return await r.hgetall(keys.task(task_id))


# --- PostgreSQL writes ----------------------------------------------------------------------------
async def task_insert(*, task_id: str, text: str, priority: int, metadata: dict | None, created_ms: int) -> None:
    """Insert a new pending task; returns after COMMIT."""
    await pg.insert(Task, {
        "id": task_id, "text": text, "status": "pending", "priority": priority,
        "metadata": metadata, "created_at": dt_from_ms(created_ms), "updated_at": dt_from_ms(created_ms),
    })


async def task_sync_from_hash(h: dict[str, str]) -> None:
    """Refresh the PostgreSQL row of a task from its Redis hash (after update/assign/unassign)."""
    completed = h.get("completedAt")
    await pg.update(Task, h["id"], {
        "text": h.get("text", ""),
        "status": h.get("status", "pending"),
        "priority": int(h.get("priority") or 50),
        "assigned_to": h.get("assignedTo") or None,
        "metadata": json_or_none(h.get("metadata")),
        "completed_at": parse_iso(completed) if completed else None,
        "updated_at": parse_iso(h["updatedAt"]) if h.get("updatedAt") else datetime.now().astimezone(),
    })


async def task_delete_rows(task_id: str) -> int:
    """Delete a task row and its attachments in one statement. Returns task rows deleted.

    Django's CASCADE is emulated by the ORM, so the database constraint does not cascade: a bare
    DELETE of a task that has attachments fails with a foreign-key violation.
    """
    query = sql.SQL("WITH gone AS (DELETE FROM {a} WHERE {a_task} = %s) DELETE FROM {t} WHERE {t_id} = %s").format(
        a=pg.table(TaskAttachment), a_task=pg.column(TaskAttachment, "task"),
        t=pg.table(Task), t_id=pg.column(Task, "id"),
    )
    return await pg.execute(query, [task_id, task_id])


async def task_exists_in_pg(task_id: str) -> bool:
    rows = await pg.fetch(
        sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(pg.table(Task), pg.column(Task, "id")), [task_id]
    )
    return bool(rows)


# --- attachments (Redis hash + index, PostgreSQL row) ------------------------------------------------
async def attachment_put(
    r: Redis, *, task_id: str, key: str, type: str, value: Any = None, content: str | None = None,
    url: str | None = None, created_by: str, persist: bool = True,
) -> str:
    """Write (or overwrite) one attachment of a task; returns its id."""
    now = now_ms()
    attachment_id = f"ta-{now}-{random_base36(9)}"
    existing = await r.hget(keys.task_attachment(task_id, key), "id")
    attachment_id = existing or attachment_id
    iso = iso_ms(now)
    fields = {
        "id": attachment_id, "taskId": task_id, "key": key, "type": type,
        "value": "" if value is None else orjson.dumps(value).decode(),
        "content": content or "", "url": url or "", "size": "", "mimeType": "",
        "createdBy": created_by, "createdAt": iso, "updatedAt": iso,
    }
    async with r.pipeline(transaction=True) as pipe:
        pipe.hset(keys.task_attachment(task_id, key), mapping=fields)
        pipe.zadd(keys.task_attachments(task_id), {key: now})
        await pipe.execute()
    if persist:
        await pg.upsert(TaskAttachment, {
            "id": attachment_id, "task_id": task_id, "key": key, "type": type, "value": value,
            "content": content, "url": url, "created_by": created_by,
            "created_at": dt_from_ms(now), "updated_at": dt_from_ms(now),
        }, conflict=("task", "key"))
    return attachment_id


async def attachments_in_redis(r: Redis, task_id: str, *, strip_git: bool = False) -> dict[str, dict[str, Any]]:
    """{key: {type, value, createdAt}} of one task, oldest first (task.claim's shape)."""
    names = await r.zrange(keys.task_attachments(task_id), 0, -1)
    if not names:
        return {}
    async with r.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(keys.task_attachment(task_id, name), "type", "value", "content", "url", "createdAt")
        rows = await pipe.execute()
    out: dict[str, dict[str, Any]] = {}
    for name, (kind, value, content, url, created) in zip(names, rows, strict=True):
        if kind is None:
            continue
        if strip_git and (name.startswith("git-commit-") or name.startswith("git-ref-")):
            shown = None
        else:
            shown = json_or_none(value) if value else (content or url or None)
        out[name] = {"type": kind, "value": shown, "createdAt": created or ""}
    return out


# --- queries -----------------------------------------------------------------------------------------
_ORDER_COLUMNS = {
    "createdAt": "created_at", "updatedAt": "updated_at", "priority": "priority",
    "status": "status", "assignedTo": "assigned_to",
}


def _task_select() -> sql.Composable:
    cols = ["id", "text", "status", "priority", "assigned_to", "metadata", "result", "error",
            "created_at", "updated_at", "completed_at"]
    return sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(pg.column(Task, c), sql.Identifier(c)) for c in cols
    )


async def task_query(
    *, status: str | None = None, assigned_to: str | None = None, priority: int | None = None,
    limit: int = 100, offset: int = 0, order_by: str = "createdAt", order: str = "desc",
) -> tuple[list[dict[str, Any]], int]:
    """A page of tasks and the total matching count (task.list)."""
    where, params = [], []
    for name, value in (("status", status), ("assigned_to", assigned_to), ("priority", priority)):
        if value is not None:
            where.append(sql.SQL("{} = %s").format(pg.column(Task, name)))
            params.append(value)
    clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    direction = sql.SQL("DESC" if order == "desc" else "ASC")
    order_col = pg.column(Task, _ORDER_COLUMNS[order_by])
    page = sql.SQL("SELECT {}, count(*) OVER () AS total FROM {}{} ORDER BY {} {}, {} ASC LIMIT %s OFFSET %s").format(
        _task_select(), pg.table(Task), clause, order_col, direction, pg.column(Task, "id")
    )
    rows = await pg.fetch(page, [*params, limit, offset])
    if rows:
        return rows, int(rows[0]["total"])
    if offset == 0:
        return [], 0
    count = await pg.fetch(sql.SQL("SELECT count(*) AS n FROM {}{}").format(pg.table(Task), clause), params)
    return [], int(count[0]["n"])


async def claim_candidates(*, worker_id: str, limit: int = 10) -> list[str]:
    """Pending tasks a worker may take: highest priority first, then oldest (SPEC §9.4)."""
    query = sql.SQL(
        "SELECT {id} FROM {t} WHERE {status} = 'pending' AND ({assigned} IS NULL OR {assigned} = %s) "
        "ORDER BY {priority} DESC, {created} ASC, {id} ASC LIMIT %s"
    ).format(
        id=pg.column(Task, "id"), t=pg.table(Task), status=pg.column(Task, "status"),
        assigned=pg.column(Task, "assigned_to"), priority=pg.column(Task, "priority"),
        created=pg.column(Task, "created_at"),
    )
    return [row["id"] for row in await pg.fetch(query, [worker_id, limit])]


async def attachment_summaries(task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Up to 20 newest attachments per task, for task.list's attachmentKeys/resultAttachment."""
    if not task_ids:
        return {}
    query = sql.SQL(
        "SELECT * FROM (SELECT {task} AS task_id, {key} AS key, {type} AS type, {value} AS value, "
        "{content} AS content, {created} AS created_at, row_number() OVER (PARTITION BY {task} "
        "ORDER BY {created} DESC) AS n FROM {t} WHERE {task} = ANY(%s)) s WHERE n <= 20"
    ).format(
        task=pg.column(TaskAttachment, "task"), key=pg.column(TaskAttachment, "key"),
        type=pg.column(TaskAttachment, "type"), value=pg.column(TaskAttachment, "value"),
        content=pg.column(TaskAttachment, "content"), created=pg.column(TaskAttachment, "created_at"),
        t=pg.table(TaskAttachment),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in await pg.fetch(query, [task_ids]):
        out.setdefault(row["task_id"], []).append(row)
    return out


# --- start-up hydration (SPEC §12.3) -----------------------------------------------------------------
async def tasks_hydrate(r: Redis, *, page_size: int = 1000) -> int:
    """Rebuild Redis task state from PostgreSQL when Redis holds no task. Returns tasks restored.

    Guarded by a lock so two servers starting together do not both rebuild, and never touches a
    Redis that already holds tasks (SPEC §12.3 recommendation).
    """
    if not await r.set(keys.HYDRATION_LOCK, "1", nx=True, ex=300):
        return 0
    try:
        async for key in r.scan_iter(match=keys.TASK_PATTERN, count=500):
            if keys.is_task_hash_key(key):
                return 0
        restored, offset = 0, 0
        while True:
            rows, _ = await task_query(limit=page_size, offset=offset, order_by="createdAt", order="asc")
            page = [row["id"] for row in rows if await _restore_one(r, row)]
            await _restore_attachments(r, page)
            restored += len(page)
            if len(rows) < page_size:
                break
            offset += page_size
        await r.set(keys.HYDRATION_DONE, iso_ms(now_ms()))
        return restored
    finally:
        await r.delete(keys.HYDRATION_LOCK)


async def _restore_one(r: Redis, row: dict[str, Any]) -> int:
    created = row["created_at"]
    fields = {
        "id": row["id"], "text": row["text"], "priority": str(row["priority"]), "status": row["status"],
        "createdAt": iso_dt(created), "updatedAt": iso_dt(row["updated_at"]),
        "metadata": orjson.dumps(row["metadata"] or {}).decode(),
        "assignedTo": row["assigned_to"] or "",
        "result": "" if row["result"] is None else orjson.dumps(row["result"]).decode(),
        "error": row["error"] or "", "createdAtMs": str(int(created.timestamp() * 1000)),
    }
    if row["completed_at"] is not None:
        fields["completedAt"] = iso_dt(row["completed_at"])
    if row["assigned_to"]:
        fields["assignedAt"] = iso_dt(row["updated_at"])
    ok = await scripts.task_restore(
        r, task_id=row["id"], status=row["status"], assignee=row["assigned_to"] or "",
        priority=row["priority"], fields=fields,
    )
    return int(ok)


async def _restore_attachments(r: Redis, task_ids: list[str]) -> int:
    """SPEC §12.3 step 10: put back the attachment hashes and index of restored tasks (the layout
    `attachment_put` writes), so attachment counts and the result attachment survive a restart."""
    if not task_ids:
        return 0
    names = ("id", "task", "key", "type", "value", "content", "url", "size", "mime_type", "created_by",
             "created_at", "updated_at")
    query = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s)").format(
        sql.SQL(", ").join(sql.SQL("{} AS {}").format(pg.column(TaskAttachment, n), sql.Identifier(n)) for n in names),
        pg.table(TaskAttachment), pg.column(TaskAttachment, "task"),
    )
    rows = await pg.fetch(query, [task_ids])
    async with r.pipeline(transaction=False) as pipe:
        for a in rows:
            pipe.hset(keys.task_attachment(a["task"], a["key"]), mapping={
                "id": a["id"], "taskId": a["task"], "key": a["key"], "type": a["type"],
                "value": "" if a["value"] is None else orjson.dumps(a["value"]).decode(),
                "content": a["content"] or "", "url": a["url"] or "",
                "size": "" if a["size"] is None else str(a["size"]), "mimeType": a["mime_type"] or "",
                "createdBy": a["created_by"] or "", "createdAt": iso_dt(a["created_at"]),
                "updatedAt": iso_dt(a["updated_at"]),
            })
            pipe.zadd(keys.task_attachments(a["task"]), {a["key"]: int(a["created_at"].timestamp() * 1000)})
        await pipe.execute()
    return len(rows)
