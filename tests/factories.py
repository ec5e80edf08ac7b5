"""Test data: ORM factories (factory_boy) and the instance-hash helper (STYLE §9).

`register_instance` writes `cb:instance:{id}` the way SPEC §6.4 describes INSTANCE_REGISTER's
result. It stands in for `system.register` until that handler exists; keep every test that needs a
live instance going through it, so switching to the handler later is a one-place change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import factory
import orjson
import pytest
from factory.django import DjangoModelFactory
from psycopg import sql

from claudebench.core import keys, pg
from claudebench.core.clock import iso_ms, now_ms
from tasks.models import Task, TaskAttachment

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


async def register_instance(
    redis, instance_id: str, *, roles: tuple[str, ...] = ("worker",), status: str = "ACTIVE",
    health: str = "healthy", ttl_s: int = 30, metadata: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write a registered instance's hash (SPEC §6.4) and return its fields."""
    now = now_ms()
    fields = {
        "id": instance_id, "roles": orjson.dumps(list(roles)).decode(), "health": health,
        "status": status, "lastSeen": str(now), "lastHeartbeat": iso_ms(now),
        "metadata": orjson.dumps(metadata or {}).decode(),
    }
    await redis.hset(keys.instance(instance_id), mapping=fields)
    await redis.expire(keys.instance(instance_id), ttl_s)
    return fields


class TaskFactory(DjangoModelFactory):
    """A PostgreSQL task row; `created_at` steps one second per row so ordering is predictable."""

    class Meta:
        model = Task

    id = factory.Sequence(lambda n: f"t-{1_700_000_000_000 + n}")
    text = factory.Sequence(lambda n: f"task number {n}")
    status = "pending"
    priority = 50
    created_at = factory.Sequence(lambda n: BASE_TIME + timedelta(seconds=n))


class TaskAttachmentFactory(DjangoModelFactory):
    class Meta:
        model = TaskAttachment

    id = factory.Sequence(lambda n: f"ta-{1_700_000_000_000 + n}-abcdefghi")
    task = factory.SubFactory(TaskFactory)
    key = factory.Sequence(lambda n: f"note-{n}")
    type = "json"
    value = factory.LazyAttribute(lambda a: {"k": a.key})


async def wipe_task_tables() -> None:
    """Delete every task row (attachments first), committed at once, through the request-path pool."""
    for model in (TaskAttachment, Task):
        await pg.execute(sql.SQL("DELETE FROM {}").format(pg.table(model)))


@pytest.fixture
async def task_tables():
    """Empty Task/TaskAttachment before and after a test.

    Used with the plain `django_db` mark instead of `django_db(transaction=True)`: handler writes
    and async ORM calls commit on their own connections either way, and a DELETE of two small
    tables costs milliseconds where the flush of every table after each transactional test cost
    about a second on a loaded machine (it made this area several times slower).
    """
    await wipe_task_tables()
    yield
    await wipe_task_tables()


# The mark for tests that write tasks through handlers (see task_tables).
TASK_DB = [pytest.mark.django_db, pytest.mark.usefixtures("task_tables")]
