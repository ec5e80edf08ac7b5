"""The operator REST API under /api/ (DRF): permissions, every filter, page boundaries, the schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.urls import URLPattern, URLResolver

from claudebench.core import keys
from events.models import AuditEvent
from instances.models import Instance
from tasks.models import Task
from tests.factories import TaskFactory, register_instance

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@sync_to_async
def make_tasks() -> None:
    TaskFactory(id="t-1", text="Write the docs", status="pending", priority=10)
    TaskFactory(id="t-2", text="fix the DOCS build", status="in_progress", priority=50, assigned_to="worker-a")
    TaskFactory(id="t-3", text="ship", status="completed", priority=90, assigned_to="worker-b")
    TaskFactory(id="t-4", text="retry me", status="failed", priority=50, assigned_to="")
    TaskFactory(id="t-5", text="later", status="pending", priority=0)


@sync_to_async
def make_audit() -> None:
    rows = [
        ("e1", "event", "task.created", "alice", "c-1", {"id": "t-1"}),
        ("e2", "event", "task.updated", "bob", "c-1", {"id": "t-1"}),
        ("e3", "request", "task.create", "alice", None, {"text": "x"}),
        ("e4", "event", "system.health", "gossip", "c-2", {}),
        ("e5", "audit", "task.create", "alice", "c-2", {}),
    ]
    for i, (eid, kind, etype, actor, corr, payload) in enumerate(rows):
        AuditEvent.objects.create(event_id=eid, kind=kind, event_type=etype, actor=actor, correlation_id=corr,
                                  stream=f"cb:stream:{etype}", entry_id=f"{i}-0", payload=payload,
                                  occurred_at=T0 + timedelta(minutes=i))


async def ids(client, url: str, headers) -> list[str]:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    key = "id" if body["results"] and "id" in body["results"][0] else "eventId"
    return [r[key] for r in body["results"]]


@pytest.mark.parametrize("path", ["/api/tasks/", "/api/tasks/t-1/", "/api/instances/", "/api/events/",
                                  "/api/handlers/", "/api/overview/", "/api/schema/", "/api/docs/"])
async def test_anonymous_is_refused(client, path):
    response = await client.get(path)
    assert response.status_code in (401, 403)


async def test_non_staff_token_is_refused(client, db):
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    user = await sync_to_async(User.objects.create_user)("agent", password="pw-123456")
    token = await sync_to_async(Token.objects.create)(user=user)
    response = await client.get("/api/tasks/", headers={"Authorization": f"Token {token.key}"})
    assert response.status_code == 403


async def test_bad_token_is_refused(client):
    assert (await client.get("/api/tasks/", headers={"Authorization": "Token nope"})).status_code in (401, 403)


@pytest.mark.parametrize("query, expected", [
    ("", ["t-5", "t-4", "t-3", "t-2", "t-1"]),
    ("status=pending", ["t-5", "t-1"]),
    ("status=pending,failed", ["t-5", "t-4", "t-1"]),
    ("assignee=worker-a", ["t-2"]),
    ("assignee=none", ["t-5", "t-4", "t-1"]),
    ("priority=50", ["t-4", "t-2"]),
    ("priority=0", ["t-5"]),
    ("priority_min=50", ["t-4", "t-3", "t-2"]),
    ("priority_max=10", ["t-5", "t-1"]),
    ("priority_min=10&priority_max=50", ["t-4", "t-2", "t-1"]),
    ("q=docs", ["t-2", "t-1"]),
    ("q=docs&status=pending", ["t-1"]),
    ("q=nothing-matches", []),
])
async def test_task_filters(client, operator, query, expected):
    await make_tasks()
    response = await client.get(f"/api/tasks/?{query}", headers=operator["headers"])
    assert response.status_code == 200
    assert [t["id"] for t in response.json()["results"]] == expected


@pytest.mark.parametrize("query", ["status=done", "priority=high", "priority=101", "priority_min=-1"])
async def test_bad_task_filters_are_400(client, operator, query):
    await make_tasks()
    response = await client.get(f"/api/tasks/?{query}", headers=operator["headers"])
    assert response.status_code == 400
    assert response.json()


@pytest.mark.parametrize("size, pages", [(1, 5), (2, 3), (4, 2), (5, 1), (6, 1)])
async def test_task_pages_cover_everything_once(client, operator, size, pages):
    await make_tasks()
    url, seen, count = f"/api/tasks/?page_size={size}", [], 0
    while url:
        body = (await client.get(url, headers=operator["headers"])).json()
        assert len(body["results"]) <= size
        seen += [t["id"] for t in body["results"]]
        count += 1
        url = body["next"]
    assert count == pages
    assert seen == ["t-5", "t-4", "t-3", "t-2", "t-1"]


async def test_previous_link_walks_back(client, operator):
    await make_tasks()
    first = (await client.get("/api/tasks/?page_size=2", headers=operator["headers"])).json()
    assert first["previous"] is None
    second = (await client.get(first["next"], headers=operator["headers"])).json()
    back = (await client.get(second["previous"], headers=operator["headers"])).json()
    assert [t["id"] for t in back["results"]] == [t["id"] for t in first["results"]]


async def test_task_detail_has_its_event_history(client, operator):
    await make_tasks()
    await make_audit()
    body = (await client.get("/api/tasks/t-1/", headers=operator["headers"])).json()
    assert body["text"] == "Write the docs" and body["status"] == "pending"
    assert [e["eventId"] for e in body["events"]] == ["e1", "e2"]  # events only, oldest first
    assert (await client.get("/api/tasks/t-404/", headers=operator["headers"])).status_code == 404


@pytest.mark.parametrize("query, expected", [
    ("", ["e5", "e4", "e3", "e2", "e1"]),
    ("type=task.created", ["e1"]),
    ("type=task.*", ["e5", "e3", "e2", "e1"]),
    ("type=*", ["e5", "e4", "e3", "e2", "e1"]),
    ("actor=alice", ["e5", "e3", "e1"]),
    ("correlation_id=c-1", ["e2", "e1"]),
    ("kind=request", ["e3"]),
    ("since=2026-03-01T00:02:00Z", ["e5", "e4", "e3"]),
    ("until=2026-03-01T00:02:00Z", ["e2", "e1"]),
    (f"since={int((T0 + timedelta(minutes=1)).timestamp() * 1000)}&until=2026-03-01T00:03:00Z", ["e3", "e2"]),
    ("actor=alice&type=task.create", ["e5", "e3"]),
])
async def test_audit_event_filters(client, operator, query, expected):
    await make_audit()
    assert await ids(client, f"/api/events/?{query}", operator["headers"]) == expected


@pytest.mark.parametrize("query", ["type=ta*sk", "kind=weird", "since=yesterday", "until=2026-13-45"])
async def test_bad_audit_filters_are_400(client, operator, query):
    assert (await client.get(f"/api/events/?{query}", headers=operator["headers"])).status_code == 400


@pytest.mark.parametrize("size", [1, 2, 3, 5])
async def test_audit_cursor_pages(client, operator, size):
    await make_audit()
    url, seen = f"/api/events/?page_size={size}", []
    while url:
        body = (await client.get(url, headers=operator["headers"])).json()
        seen += [e["eventId"] for e in body["results"]]
        url = body["next"]
    assert seen == ["e5", "e4", "e3", "e2", "e1"]


async def test_instances_show_heartbeat_age_and_load(client, operator, redis):
    await register_instance(redis, "worker-live", roles=("worker",))
    await redis.rpush(keys.instance_queue("worker-live"), "t-1", "t-2")
    await redis.hset(keys.metrics_instance("worker-live"), mapping={"assignedTasks": 2, "tasksCompleted": 7})
    await redis.set(keys.LEADER_CURRENT, "worker-live")
    await sync_to_async(Instance.objects.create)(id="worker-gone", name="worker-gone", role="worker", status="OFFLINE")
    body = (await client.get("/api/instances/", headers=operator["headers"])).json()
    assert body["count"] == 2
    live, gone = body["instances"]
    assert live["id"] == "worker-live" and live["live"] and live["leader"] and live["health"] == "healthy"
    assert 0 <= live["heartbeatAgeMs"] < 10_000
    assert live["load"] == {"queueLength": 2, "assignedTasks": 2, "tasksCompleted": 7, "tasksFailed": 0}
    assert gone["id"] == "worker-gone" and not gone["live"] and gone["health"] == "gone"


async def test_handlers_list_limits_and_breaker_state(client, operator):
    body = (await client.get("/api/handlers/", headers=operator["headers"])).json()
    create = next(h for h in body["handlers"] if h["event"] == "task.create")
    assert create["enforced"]["rateLimit"] >= 1
    assert body["total"] == len(body["handlers"])


async def test_overview(client, operator, redis):
    await register_instance(redis, "worker-1")
    await redis.set(keys.PARTITION_DETECTED, "true")
    body = (await client.get("/api/overview/", headers=operator["headers"])).json()
    assert body["health"]["redis"] is True and body["health"]["postgres"] is True
    assert body["health"]["status"] == "healthy"
    assert body["partition"]["detected"] is True
    assert body["instanceCount"] == 1 and "pending" in body["queues"]


async def test_requeue_goes_through_the_handlers(client, operator, call, redis):
    task = await call("task.create", {"text": "requeue me"})
    await call("task.update", {"id": task["id"], "updates": {"status": "failed"}})
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is None
    response = await client.post(f"/api/tasks/{task['id']}/requeue/", headers=operator["headers"])
    assert response.status_code == 200, response.text
    assert await redis.hget(keys.task(task["id"]), "status") == "pending"
    assert await redis.zscore(keys.PENDING_TASKS, task["id"]) is not None
    row = await Task.objects.aget(id=task["id"])
    assert row.status == "pending"
    assert (await client.post("/api/tasks/t-404/requeue/", headers=operator["headers"])).status_code == 404


def _api_routes() -> set[str]:
    from dashboard.api import urlpatterns

    found: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if "schema" in route or "docs" in route or "format" in route:
                    continue
                route = re.sub(r"\(\?P<\w+>[^)]*\)|<str:\w+>", "{id}", route)
                found.add("/api/" + route.lstrip("^").rstrip("$"))

    walk(urlpatterns, "")
    return found


async def test_openapi_schema_validates_and_covers_every_route(client, operator):
    from drf_spectacular.validation import validate_schema

    response = await client.get("/api/schema/?format=json", headers=operator["headers"])
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    documented = set(schema["paths"])
    assert _api_routes() <= documented, _api_routes() - documented
    assert {"/api/tasks/", "/api/tasks/{id}/", "/api/instances/", "/api/events/", "/api/handlers/"} <= documented


async def test_docs_page_is_served_to_staff(client, operator):
    response = await client.get("/api/docs/", headers=operator["headers"])
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


async def test_root_stays_json_for_api_clients_and_redirects_browsers(client):
    assert (await client.get("/")).json()["status"] == "healthy"
    assert (await client.get("/", headers={"Accept": "application/json"})).status_code == 200
    browser = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 302 and browser.headers["location"] == "/dashboard/"
