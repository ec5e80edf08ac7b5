"""task.list: filters, ordering, pagination and attachment summaries (SPEC §5.3.1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async

from claudebench.core.errors import InvalidParams
from tasks import services
from tasks.models import Task
from tests.factories import BASE_TIME, TASK_DB, TaskFactory

pytestmark = TASK_DB

ROWS = [  # id suffix, status, priority, assignedTo
    ("01", "pending", 50, None),
    ("02", "pending", 90, "w-1"),
    ("03", "in_progress", 10, "w-1"),
    ("04", "completed", 50, "w-2"),
    ("05", "failed", 70, "w-2"),
    ("06", "pending", 0, None),
]


@sync_to_async
def make_rows() -> list[str]:
    ids = []
    for n, (suffix, status, priority, assignee) in enumerate(ROWS):
        task = TaskFactory(id=f"t-1000{suffix}", text=f"row {suffix}", status=status, priority=priority,
                           assigned_to=assignee, created_at=BASE_TIME + timedelta(minutes=n))
        # updatedAt runs the other way round, so the two orderings differ.
        Task.objects.filter(id=task.id).update(updated_at=BASE_TIME + timedelta(days=1, minutes=-n))
        ids.append(task.id)
    return ids


async def listed(call, **params) -> list[str]:
    return [t["id"] for t in (await call("task.list", params))["tasks"]]


async def test_defaults_are_newest_first_with_every_field(call, redis):
    ids = await make_rows()
    out = await call("task.list", {})
    assert out["totalCount"] == 6 and out["hasMore"] is False
    assert [t["id"] for t in out["tasks"]] == ids[::-1]
    row = out["tasks"][-1]
    assert set(row) == {"id", "text", "status", "priority", "assignedTo", "metadata", "result", "error",
                        "createdAt", "updatedAt", "completedAt", "attachmentCount"}
    assert row["createdAt"] == "2026-01-01T00:00:00.000Z" and row["updatedAt"] == "2026-01-02T00:00:00.000Z"
    assert row["assignedTo"] is None and row["attachmentCount"] == 0


async def test_every_filter(call, redis):
    ids = dict(zip([r[0] for r in ROWS], await make_rows(), strict=True))
    assert await listed(call, status="pending") == [ids["06"], ids["02"], ids["01"]]
    assert await listed(call, status="in_progress") == [ids["03"]]
    assert await listed(call, status="completed") == [ids["04"]]
    assert await listed(call, status="failed") == [ids["05"]]
    assert await listed(call, assignedTo="w-2") == [ids["05"], ids["04"]]
    assert await listed(call, assignedTo="w-nobody") == []
    assert await listed(call, priority=50) == [ids["04"], ids["01"]]
    assert await listed(call, priority=0) == [ids["06"]]  # 0 is a filter value, not "no filter"
    assert await listed(call, status="pending", assignedTo="w-1") == [ids["02"]]
    assert await listed(call, status="pending", priority=50, assignedTo="w-1") == []
    out = await call("task.list", {"status": "pending", "limit": 2})
    assert out["totalCount"] == 3 and out["hasMore"] is True


async def test_ordering(call, redis):
    ids = dict(zip([r[0] for r in ROWS], await make_rows(), strict=True))
    order = [ids[s] for s in ("01", "02", "03", "04", "05", "06")]
    assert await listed(call, order="asc") == order
    assert await listed(call, orderBy="updatedAt", order="desc") == order  # updatedAt runs backwards
    assert await listed(call, orderBy="updatedAt", order="asc") == order[::-1]
    # Equal priorities are ordered by id (stable pages).
    assert await listed(call, orderBy="priority", order="desc") == [ids[s] for s in ("02", "05", "01", "04", "03", "06")]
    assert await listed(call, orderBy="priority", order="asc") == [ids[s] for s in ("06", "03", "01", "04", "05", "02")]
    by_status = await listed(call, orderBy="status", order="asc")
    statuses = [(await Task.objects.aget(id=i)).status for i in by_status]
    assert statuses == sorted(statuses)
    assigned = await listed(call, orderBy="assignedTo", order="asc", status="pending", assignedTo="w-1")
    assert assigned == [ids["02"]]


async def test_pagination_boundaries(call, redis):
    ids = (await make_rows())[::-1]  # default order: newest first
    page = await call("task.list", {"limit": 2, "offset": 0})
    assert [t["id"] for t in page["tasks"]] == ids[:2] and page["hasMore"] is True and page["totalCount"] == 6
    page = await call("task.list", {"limit": 2, "offset": 4})
    assert [t["id"] for t in page["tasks"]] == ids[4:] and page["hasMore"] is False  # 4 + 2 == 6
    page = await call("task.list", {"limit": 5, "offset": 0})
    assert page["hasMore"] is True
    page = await call("task.list", {"limit": 6, "offset": 0})
    assert page["hasMore"] is False
    page = await call("task.list", {"limit": 1, "offset": 5})
    assert [t["id"] for t in page["tasks"]] == ids[5:] and page["hasMore"] is False
    page = await call("task.list", {"limit": 10, "offset": 6})
    assert page == {"tasks": [], "totalCount": 6, "hasMore": False}  # past the end: total still counted
    page = await call("task.list", {"limit": 1000, "offset": 100})
    assert page == {"tasks": [], "totalCount": 6, "hasMore": False}
    assert await call("task.list", {"status": "pending", "offset": 50}) == {"tasks": [], "totalCount": 3,
                                                                           "hasMore": False}


async def test_empty_table(call, redis):
    assert await call("task.list", {}) == {"tasks": [], "totalCount": 0, "hasMore": False}


async def test_invalid_list_input(call, redis):
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "10"}, {"offset": -1}, {"offset": 1.5},
                   {"orderBy": "text"}, {"order": "DESC"}, {"status": "done"}, {"priority": 101},
                   {"assignedTo": 5}, {"status": None}):
        with pytest.raises(InvalidParams):
            await call("task.list", params)


async def test_attachment_summaries(call, redis, new_task):
    task = await new_task("with attachments")
    plain = await new_task("without")
    await services.attachment_put(redis, task_id=task["id"], key="notes", type="json", value={"a": 1},
                                  created_by="test")
    await services.attachment_put(redis, task_id=task["id"], key="result", type="json", value={"ok": True},
                                  created_by="test")
    out = await call("task.list", {"order": "asc"})
    first, second = out["tasks"]
    assert first["id"] == task["id"] and first["attachmentCount"] == 2
    assert sorted(first["attachmentKeys"]) == ["notes", "result"]
    assert first["resultAttachment"]["type"] == "json" and first["resultAttachment"]["value"] == {"ok": True}
    assert "content" not in first["resultAttachment"]  # omitted, not null
    assert second["id"] == plain["id"] and second["attachmentCount"] == 0
    assert "attachmentKeys" not in second and "resultAttachment" not in second


async def test_list_reads_what_handlers_wrote(call, redis, new_task):
    created = await new_task("fresh", 42, metadata={"k": "v"})
    [row] = (await call("task.list", {}))["tasks"]
    assert row["id"] == created["id"] and row["createdAt"] == created["createdAt"]
    assert row["metadata"] == {"k": "v"} and row["priority"] == 42 and row["status"] == "pending"
