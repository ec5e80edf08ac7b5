"""MCP resources (SPEC §2.7): read-only views of tasks, decompositions and the swarm.

Task data comes from the PostgreSQL Task and TaskAttachment tables. The swarm tables (subtasks,
assignments, conflicts, integration) do not exist yet: `swarm://conflicts` answers its documented
empty shape and `swarm://context/{id}` answers the error text, until that domain lands. A failure
while reading never fails the request: the client gets `text/plain` "Error reading resource: …".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import mcp_types as types
from django.template.loader import render_to_string
from mcp.shared.exceptions import MCPError
from psycopg import sql

from claudebench.core import keys, pg, registry
from claudebench.core.clock import iso_ms, ms_from_dt, now_ms
from claudebench.core.redis import get_redis
from tasks.models import Task, TaskAttachment

log = logging.getLogger("claudebench.transport.mcp")

JSON = "application/json"
RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource URI
STREAM_SCAN_LIMIT = 500  # streams looked at for the welcome page; it shows the busiest ten

TASK_VIEW_TEMPLATE = "task://view/{taskId}"
_TASK_COLUMNS = ("id", "text", "status", "priority", "assigned_to", "result", "error", "metadata",
                 "created_at", "updated_at", "completed_at")


class ResourceError(Exception):
    """Reading failed for a reason the client should read ("Task not found: t-9")."""


def _iso(value: datetime | None) -> str | None:
    return iso_ms(ms_from_dt(value)) if value is not None else None


def _select(model, names, tail: sql.Composable, params: list[Any]) -> tuple[sql.Composable, list[Any]]:
    cols = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(pg.column(model, n), sql.Identifier(n)) for n in names
    )
    return sql.SQL("SELECT {} FROM {} ").format(cols, pg.table(model)) + tail, params


async def _tasks(tail: str, params: list[Any], *, names=_TASK_COLUMNS) -> list[dict[str, Any]]:
    fields = {n: pg.column(Task, n) for n in ("status", "assigned_to", "priority", "created_at", "id")}
    query, args = _select(Task, names, sql.SQL(tail).format(**fields), params)
    return await pg.fetch(query, args)


def _task_wire(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "text": row["text"], "status": row["status"], "priority": row["priority"],
            "assignedTo": row["assigned_to"], "createdAt": _iso(row["created_at"]),
            "updatedAt": _iso(row["updated_at"])}


async def _attachments(task_id: str, key: str | None = None) -> list[dict[str, Any]]:
    names = ("key", "type", "value", "content", "url", "created_at")
    tail = sql.SQL("WHERE {} = %s").format(pg.column(TaskAttachment, "task"))
    params: list[Any] = [task_id]
    if key is not None:
        tail += sql.SQL(" AND {} = %s").format(pg.column(TaskAttachment, "key"))
        params.append(key)
    tail += sql.SQL(" ORDER BY {}").format(pg.column(TaskAttachment, "created_at"))
    query, args = _select(TaskAttachment, names, tail, params)
    return await pg.fetch(query, args)


def _attachment_value(row: dict[str, Any]) -> Any:
    if row["value"] is not None:
        return row["value"]
    return row["content"] if row["content"] is not None else row["url"]


# --- swarm:// ----------------------------------------------------------------------------------------

async def swarm_tasks(_: re.Match) -> Any:
    rows = await _tasks("ORDER BY {created_at} DESC LIMIT 50", [])
    return {"tasks": [_task_wire(r) for r in rows], "total": len(rows)}


async def swarm_pending(_: re.Match) -> Any:
    rows = await _tasks(
        "WHERE {status} = 'pending' AND ({assigned_to} IS NULL OR {assigned_to} = '') "
        "ORDER BY {priority} DESC, {created_at} ASC, {id} ASC LIMIT 20", [],
    )
    pending = [{"id": r["id"], "text": r["text"], "priority": r["priority"], "createdAt": _iso(r["created_at"]),
                "metadata": r["metadata"]} for r in rows]
    return {"pendingTasks": pending, "total": len(pending), "nextTask": pending[0] if pending else None}


async def swarm_conflicts(_: re.Match) -> Any:
    # No conflict table yet (swarm domain): nothing can be pending.
    return {"pendingConflicts": []}


async def _decomposition(task_id: str) -> Any:
    rows = await _attachments(task_id, "decomposition")
    if not rows:
        raise ResourceError(f"No decomposition found for task {task_id}")
    return _attachment_value(rows[0])


async def swarm_decomposition(match: re.Match) -> Any:
    return await _decomposition(match["id"])


def _subtasks(decomposition: Any) -> list[dict[str, Any]]:
    items = decomposition.get("subtasks") if isinstance(decomposition, dict) else None
    return [s for s in items or [] if isinstance(s, dict)]


def _progress(subtasks: list[dict[str, Any]]) -> int:
    if not subtasks:
        return 0
    done = sum(1 for s in subtasks if s.get("status") == "completed")
    return round(done * 100 / len(subtasks))


async def swarm_progress(match: re.Match) -> Any:
    task_id = match["id"]
    rows = await _tasks("WHERE {id} = %s", [task_id], names=("id", "text"))
    if not rows:
        raise ResourceError(f"Task not found: {task_id}")
    found = await _attachments(task_id, "decomposition")
    subtasks = _subtasks(_attachment_value(found[0])) if found else []
    return {
        "taskId": task_id, "taskText": rows[0]["text"], "overallProgress": _progress(subtasks),
        "subtaskProgress": [{"id": s.get("id"), "description": s.get("description"),
                             "specialist": s.get("specialist"), "status": s.get("status", "pending")}
                            for s in subtasks],
        "integration": None,
    }


async def swarm_context(match: re.Match) -> Any:
    # Subtask rows live in the swarm tables, which this server does not have yet.
    raise ResourceError(f"Subtask not found: {match['id']}")


async def swarm_decompositions(_: re.Match) -> Any:
    t, a = Task, TaskAttachment
    query = sql.SQL(
        "SELECT a.{task_id} AS task_id, t.{text} AS text, a.{value} AS value, a.{created} AS created_at "
        "FROM {att} a JOIN {task} t ON t.{id} = a.{task_id} WHERE a.{key} = 'decomposition' "
        "ORDER BY a.{created} DESC LIMIT 20"
    ).format(task_id=pg.column(a, "task"), text=pg.column(t, "text"), value=pg.column(a, "value"),
             created=pg.column(a, "created_at"), att=pg.table(a), task=pg.table(t), id=pg.column(t, "id"),
             key=pg.column(a, "key"))
    rows = await pg.fetch(query)
    out = []
    for row in rows:
        value = row["value"] if isinstance(row["value"], dict) else {}
        subtasks = _subtasks(value)
        out.append({"taskId": row["task_id"], "taskText": row["text"], "strategy": value.get("strategy"),
                    "subtaskCount": len(subtasks), "progress": _progress(subtasks),
                    "createdAt": _iso(row["created_at"]), "resourceUri": f"swarm://decomposition/{row['task_id']}"})
    return {"decompositions": out, "total": len(out)}


# --- task:// ----------------------------------------------------------------------------------------

def _age(created: datetime | None) -> str:
    if created is None:
        return "unknown"
    minutes = max(0, (now_ms() - ms_from_dt(created)) // 60_000)
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


async def task_view(match: re.Match) -> Any:
    task_id = match["id"]
    rows = await _tasks("WHERE {id} = %s", [task_id])
    if not rows:
        latest = await _tasks("ORDER BY {created_at} DESC LIMIT 5", [], names=("id",))
        return {"error": f"Task not found: {task_id}", "availableTasks": [r["id"] for r in latest]}
    row = rows[0]
    attachments = {a["key"]: {"type": a["type"], "value": _attachment_value(a), "createdAt": _iso(a["created_at"])}
                   for a in await _attachments(task_id)}
    result = attachments["result"]["value"] if "result" in attachments else row["result"]
    status = row["status"]
    return {
        **_task_wire(row), "metadata": row["metadata"], "error": row["error"],
        "completedAt": _iso(row["completed_at"]), "result": result, "attachments": attachments,
        "attachmentCount": len(attachments), "age": _age(row["created_at"]),
        "isAssigned": bool(row["assigned_to"]), "isCompleted": status == "completed",
        "isPending": status == "pending", "isInProgress": status == "in_progress",
    }


async def task_view_index(_: re.Match) -> str:
    rows = await _tasks("ORDER BY {created_at} DESC LIMIT 10", [], names=("id", "text", "status", "priority"))
    if not rows:
        return "No tasks yet. Create one with the task__create tool."
    lines = ["Latest tasks (read one with task://view/<id>):", ""]
    lines += [f"- {r['id']} [{r['status']}, priority {r['priority']}] {r['text'][:80]}" for r in rows]
    return "\n".join(lines)


# --- claudebench://welcome -------------------------------------------------------------------------

async def _task_counts() -> list[dict[str, Any]]:
    status, completed = pg.column(Task, "status"), pg.column(Task, "completed_at")
    query = sql.SQL(
        "SELECT {s} AS status, count(*) AS count, "
        "count(*) FILTER (WHERE {c} >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS today "
        "FROM {t} GROUP BY {s} ORDER BY {s}"
    ).format(s=status, c=completed, t=pg.table(Task))
    return await pg.fetch(query)


async def _redis_figures() -> tuple[int, float | None, list[dict[str, Any]]]:
    r = get_redis()
    events = [spec.event for spec in registry.specs()]
    pipe = r.pipeline(transaction=False)
    pipe.scard(keys.INSTANCES_ACTIVE)
    for event in events:
        pipe.hmget(keys.metrics_events(event), "count", "avgLatency")
    replies = await pipe.execute()
    total, weighted = 0, 0.0
    for count, avg in replies[1:]:
        if count and avg:
            total += int(count)
            weighted += int(count) * float(avg)
    names = []
    async for name in r.scan_iter(match=keys.STREAM_PATTERN, count=200, _type="STREAM"):
        names.append(name)
        if len(names) >= STREAM_SCAN_LIMIT:
            break
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.xlen(name)
    lengths = await pipe.execute() if names else []
    streams = sorted(({"name": n, "length": n_len} for n, n_len in zip(names, lengths, strict=True)),
                     key=lambda s: (-s["length"], s["name"]))[:10]
    return int(replies[0] or 0), (weighted / total if total else None), streams


async def welcome(_: re.Match) -> str:
    counts = await _task_counts()
    instances, avg_ms, streams = await _redis_figures()
    by_status = {row["status"]: row["count"] for row in counts}
    finished = by_status.get("completed", 0) + by_status.get("failed", 0)
    return render_to_string("mcp/welcome.md", {
        "instances": instances,
        "task_counts": counts,
        "completed_today": sum(row["today"] for row in counts),
        "success_rate": f"{by_status.get('completed', 0) * 100 / finished:.1f}%" if finished else "n/a",
        "average_response": f"{avg_ms:.2f} ms" if avg_ms is not None else "n/a (no calls measured yet)",
        "streams": streams,
    })


# --- catalogue and dispatch ------------------------------------------------------------------------

Reader = Callable[[re.Match], Awaitable[Any]]
_ID = r"(?P<id>[^/]+)"

# (uri or template, name, title, mime type, regex, reader); templates contain "{".
CATALOGUE: tuple[tuple[str, str, str, str, str, Reader], ...] = (
    ("swarm://tasks", "swarm-tasks", "Latest tasks", JSON, r"swarm://tasks", swarm_tasks),
    ("swarm://tasks/pending", "swarm-pending", "Pending queue", JSON, r"swarm://tasks/pending", swarm_pending),
    ("swarm://conflicts", "swarm-conflicts", "Conflicts waiting for a decision", JSON, r"swarm://conflicts",
     swarm_conflicts),
    ("swarm://decompositions", "swarm-decompositions", "Recent decompositions", JSON, r"swarm://decompositions",
     swarm_decompositions),
    ("claudebench://welcome", "welcome", "Welcome and current state", "text/markdown", r"claudebench://welcome",
     welcome),
    ("swarm://decomposition/{taskId}", "swarm-decomposition", "Decomposition of a task", JSON,
     rf"swarm://decomposition/{_ID}", swarm_decomposition),
    ("swarm://context/{subtaskId}", "swarm-context", "Working context of a subtask", JSON,
     rf"swarm://context/{_ID}", swarm_context),
    ("swarm://progress/{taskId}", "swarm-progress", "Progress of a decomposed task", JSON,
     rf"swarm://progress/{_ID}", swarm_progress),
    (TASK_VIEW_TEMPLATE, "task-view", "One task with its attachments", JSON, r"task://view/\{taskId\}",
     task_view_index),
    (TASK_VIEW_TEMPLATE, "task-view", "One task with its attachments", JSON, rf"task://view/{_ID}", task_view),
)


def list_resources() -> list[types.Resource]:
    return [types.Resource(uri=uri, name=name, title=title, mime_type=mime)
            for uri, name, title, mime, _, _ in CATALOGUE if "{" not in uri]


def list_templates() -> list[types.ResourceTemplate]:
    seen: dict[str, types.ResourceTemplate] = {}
    for uri, name, title, mime, _, _ in CATALOGUE:
        if "{" in uri and uri not in seen:
            seen[uri] = types.ResourceTemplate(uri_template=uri, name=name, title=title, mime_type=mime)
    return list(seen.values())


def _contents(uri: str, mime: str, value: Any) -> types.ReadResourceResult:
    if isinstance(value, str):
        text = value
        if mime == JSON:
            mime = "text/plain"
    else:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)])


async def read(uri: str) -> types.ReadResourceResult:
    for _, _, _, mime, pattern, reader in CATALOGUE:
        match = re.fullmatch(pattern, uri)
        if match is None:
            continue
        try:
            return _contents(uri, mime, await reader(match))
        except ResourceError as exc:
            message = str(exc)
        except Exception as exc:
            log.exception("MCP resource %s failed", uri)
            message = f"{exc.__class__.__name__}: {exc}"
        return types.ReadResourceResult(contents=[
            types.TextResourceContents(uri=uri, mime_type="text/plain", text=f"Error reading resource: {message}")
        ])
    raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri}", data={"uri": uri})
