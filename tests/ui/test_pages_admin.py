"""Dashboard pages and the admin control room: staff only; every model registered; actions run the
handlers (Redis, PostgreSQL and events change together)."""

from __future__ import annotations

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.contrib import admin

from claudebench.core import keys
from events.models import AuditEvent
from instances.models import Instance
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

CSRF = "a" * 32  # an unmasked CSRF secret: cookie and form field carry the same value
PAGES = ["/dashboard/", "/dashboard/events/", "/dashboard/board/", "/dashboard/instances/"]


@sync_to_async
def session_for(*, staff: bool) -> str:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_user(f"u-{staff}", password="pw-123456789", is_staff=staff, is_superuser=staff)
    c = Client()
    c.force_login(user)
    return c.cookies["sessionid"].value


@pytest.fixture
async def staff(client):
    client.cookies.set("sessionid", await session_for(staff=True))
    client.cookies.set("csrftoken", CSRF)
    return client


async def act(client, path: str, action: str, ids: list[str], **extra: str):
    data = {"action": action, "_selected_action": ids, "csrfmiddlewaretoken": CSRF, "index": "0", **extra}
    response = await client.post(path, data=data, headers={"Referer": "http://127.0.0.1:3000" + path})
    assert response.status_code == 302, response.text[:2000]
    return response


@pytest.mark.parametrize("path", PAGES)
async def test_pages_redirect_anonymous_to_login(client, path):
    response = await client.get(path)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/admin/login/?next=")


async def test_pages_refuse_non_staff(client):
    client.cookies.set("sessionid", await session_for(staff=False))
    for path in PAGES:
        assert (await client.get(path)).status_code == 302


@pytest.mark.parametrize("path, marker", [
    ("/dashboard/", 'id="chart-throughput"'), ("/dashboard/events/", 'id="pattern"'),
    ("/dashboard/board/", 'id="col-completed"'), ("/dashboard/instances/", 'id="instances"'),
])
async def test_pages_render_for_staff(staff, path, marker):
    response = await staff.get(path)
    assert response.status_code == 200
    assert marker in response.text
    assert "/static/dashboard/common.js" in response.text


async def test_static_files_are_served(client):
    response = await client.get("/static/dashboard/common.js")
    assert response.status_code == 200
    assert "WebSocket" in response.text


def test_every_model_of_our_apps_is_in_the_admin():
    ours = ("tasks", "instances", "events", "hooks")
    missing = [m.__name__ for m in apps.get_models() if m._meta.app_label in ours and not admin.site.is_registered(m)]
    assert missing == []


@pytest.mark.parametrize("path", ["/admin/tasks/task/", "/admin/tasks/taskattachment/", "/admin/instances/instance/",
                                  "/admin/events/auditevent/", "/admin/hooks/sessionevent/", "/admin/hooks/hookrule/"])
async def test_changelists_render(staff, redis, path):
    response = await staff.get(path)
    assert response.status_code == 200, response.text[:500]


async def test_admin_requeue_runs_the_handlers(staff, call, redis):
    task = await call("task.create", {"text": "admin requeue"})
    await call("task.update", {"id": task["id"], "updates": {"status": "failed"}})
    await act(staff, "/admin/tasks/task/", "requeue", [task["id"]])
    assert await redis.hget(keys.task(task["id"]), "status") == "pending"
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is not None
    assert (await Task.objects.aget(id=task["id"])).status == "pending"


async def test_admin_reassign_needs_an_instance_and_assigns(staff, call, redis):
    await call("system.register", {"id": "worker-admin", "roles": ["worker"]})  # before: registration offers tasks
    task = await call("task.create", {"text": "admin reassign"})
    await act(staff, "/admin/tasks/task/", "reassign", [task["id"]])  # no instance id: refused, nothing changes
    assert await redis.hget(keys.task(task["id"]), "assignedTo") in ("", None)
    await act(staff, "/admin/tasks/task/", "reassign", [task["id"]], instance_id="worker-admin")
    assert await redis.hget(keys.task(task["id"]), "assignedTo") == "worker-admin"
    assert (await Task.objects.aget(id=task["id"])).assigned_to == "worker-admin"


async def test_admin_reassign_to_unknown_instance_reports_the_error(staff, call, redis):
    task = await call("task.create", {"text": "admin reassign unknown"})
    response = await act(staff, "/admin/tasks/task/", "reassign", [task["id"]], instance_id="worker-nowhere")
    page = await staff.get(response.headers["location"])
    assert "worker-nowhere" in page.text
    assert await redis.hget(keys.task(task["id"]), "assignedTo") in ("", None)


async def test_admin_unregister_instance(staff, call, redis):
    await call("system.register", {"id": "worker-bye", "roles": ["worker"]})
    await Instance.objects.aget(id="worker-bye")
    await act(staff, "/admin/instances/instance/", "unregister", ["worker-bye"])
    assert await redis.exists(keys.instance("worker-bye")) == 0
    assert (await Instance.objects.aget(id="worker-bye")).status == "OFFLINE"


async def test_admin_replay_publishes_again_marked_as_replay(staff, redis, unique_type):
    from datetime import UTC, datetime

    row = await AuditEvent.objects.acreate(
        event_id="evt-1-original", kind="event", event_type=f"{unique_type}.done", actor="x", stream="s",
        entry_id="1-0", payload={"n": 1}, metadata={"correlationId": "c-9"}, occurred_at=datetime.now(UTC))
    await act(staff, "/admin/events/auditevent/", "replay", [str(row.pk)])
    entries = await redis.xrange(keys.stream(f"{unique_type}.done"))
    assert len(entries) == 1
    env = orjson.loads(entries[0][1]["data"])
    assert env["payload"] == {"n": 1} and env["id"] != "evt-1-original"
    assert env["metadata"]["replayOf"] == "evt-1-original" and env["metadata"]["correlationId"] == "c-9"
