"""Admin: the audit trail's filters and the dead-letter listing with its requeue action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from claudebench.core import bus as core_bus
from claudebench.core import keys
from events.models import AuditEvent

from .conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/events/auditevent/"


@pytest.fixture
async def admin_client():
    user = await sync_to_async(get_user_model().objects.create_superuser)("op", "op@example.com", "pw-123456")
    c = AsyncClient()
    await c.aforce_login(user)
    return c


def row(event_id: str, event_type: str, actor: str = "", correlation: str | None = None, days_ago: int = 0):
    return AuditEvent(event_id=event_id, kind="event", event_type=event_type, actor=actor, correlation_id=correlation,
                      stream=keys.stream(event_type), entry_id="1-0", payload={},
                      occurred_at=datetime.now(UTC) - timedelta(days=days_ago))


async def test_audit_trail_filters_by_type_actor_correlation_and_time(admin_client):
    await AuditEvent.objects.abulk_create([
        row("evt-a", "task.created", "alice", "corr-1"),
        row("evt-b", "task.attachment.deleted", "bob", "corr-2"),
        row("evt-c", "swarm.assigned", "alice", "corr-1", days_ago=30),
    ])

    async def ids(query: str) -> set[str]:
        response = await admin_client.get(URL + query)
        assert response.status_code == 200
        return {i for i in ("evt-a", "evt-b", "evt-c") if i in response.content.decode()}

    assert await ids("") == {"evt-a", "evt-b", "evt-c"}
    assert await ids("?type=task.*") == {"evt-a", "evt-b"}
    assert await ids("?type=task.created") == {"evt-a"}
    assert await ids("?type=task*") == set()  # not a pattern: matches nothing
    assert await ids("?actor=alice") == {"evt-a", "evt-c"}
    assert await ids("?correlation=corr-1&actor=alice") == {"evt-a", "evt-c"}
    since = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S%%2B00:00")
    assert await ids(f"?occurred_at__gte={since}") == {"evt-a", "evt-b"}
    assert (await admin_client.get(URL + "add/")).status_code == 403  # read-only trail


async def test_dead_letters_are_listed_and_requeued(redis, admin_client, running, sub):
    async def handler(event):
        raise RuntimeError("always")

    s = sub("task.created", handler, name="admin-dlq", max_retries=1, use_dlq=True)
    event_id = await core_bus.publish("task.created", {"n": 1})
    async with running(s) as consumer:
        await wait_until(lambda: consumer.totals.dead_lettered == 1)
    page = await admin_client.get(URL + "dead-letters/")
    assert page.status_code == 200
    text = page.content.decode()
    assert event_id in text and "RuntimeError: always" in text
    dlq_id = (await redis.xrange(keys.dlq("task.created")))[0][0]

    missing = await admin_client.post(URL + "dead-letters/requeue/", {"type": "task.created", "id": "1-1"})
    assert missing.status_code == 302
    assert await redis.xlen(keys.dlq("task.created")) == 1  # nothing lost on a bad request

    done = await admin_client.post(URL + "dead-letters/requeue/", {"type": "task.created", "id": dlq_id})
    assert done.status_code == 302
    assert await redis.xlen(keys.dlq("task.created")) == 0
    last = (await redis.xrevrange(keys.stream("task.created"), count=1))[0][1]
    env = orjson.loads(last["data"])
    assert env["id"] == event_id and env["metadata"]["requeuedFor"] == s.group


async def test_dead_letters_need_staff(redis):
    response = await AsyncClient().get(URL + "dead-letters/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
