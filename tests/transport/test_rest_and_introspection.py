"""REST handler routes and introspection documents (SPEC §2.1, §2.3, §2.4, §18.3)."""

from __future__ import annotations

from datetime import datetime

import orjson

from claudebench import __version__
from claudebench.core import keys, registry
from claudebench.core.registry import SPEC_ORDER
from tasks.models import Task
from tests.factories import TASK_DB

pytestmark = TASK_DB


def is_iso(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text.replace("Z", "+00:00")) is not None


# --- REST envelope (SPEC §2.3) ------------------------------------------------------------------------
async def test_success_envelope(client, redis):
    response = await client.post("/task/create", json={"text": "via rest", "priority": 7})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "data", "event", "timestamp"}
    assert body["success"] is True and body["event"] == "task.create" and is_iso(body["timestamp"])
    assert body["data"]["text"] == "via rest" and body["data"]["priority"] == 7
    assert await Task.objects.filter(id=body["data"]["id"]).aexists()


async def test_validation_failure_is_400_with_details(client, redis):
    response = await client.post("/task/create", json={"text": "", "priority": "high"})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["error"] == "Validation failed" and body["event"] == "task.create"
    paths = {tuple(issue["path"]) for issue in body["details"]}
    assert paths == {("text",), ("priority",)}
    assert all({"path", "message", "code"} <= set(issue) for issue in body["details"])
    assert await Task.objects.acount() == 0


async def test_handler_error_is_500_with_its_message(client, redis):
    response = await client.post("/task/update", json={"id": "t-1", "updates": {"text": "x"}})
    assert response.status_code == 500
    body = response.json()
    assert body == {"success": False, "error": "Internal server error", "message": body["message"],
                    "event": "task.update"}
    assert "Task not found" in body["message"]


async def test_missing_or_invalid_body_is_treated_as_empty_object(client, redis):
    # system.health takes {}: a missing, blank or unparseable body is {} and succeeds.
    for body in (b"", b"  \n", b"{not json", b"NaN", b"\xff\xfe", b"[" * 2000):
        response = await client.post("/system/health", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200, (body[:10], response.text)
        assert response.json()["data"]["status"] in ("healthy", "degraded", "unhealthy")
    # Valid JSON that is not an object reaches the handler as-is and fails its object schema.
    for body in (b"null", b"[1,2]", b'"text"', b"42"):
        response = await client.post("/system/health", content=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "Validation failed"


async def test_invalid_body_for_a_handler_with_required_fields_is_400(client, redis):
    response = await client.post("/task/create", content=b"{broken")
    assert response.status_code == 400
    assert [tuple(i["path"]) for i in response.json()["details"]] == [("text",)]


async def test_rest_body_over_the_limit_is_413(client, redis, settings):
    settings.CB_MAX_BODY_BYTES = 2048
    response = await client.post("/task/create", json={"text": "x" * 5000})
    assert response.status_code == 413
    assert response.json()["success"] is False
    assert await Task.objects.acount() == 0


async def test_rest_unstorable_text_is_400(client, redis):
    response = await client.post("/task/create", json={"text": "nul\u0000here"})
    assert response.status_code == 400 and response.json()["details"][0]["path"] == ["text"]
    assert await redis.zcard(keys.PENDING_TASKS) == 0


# --- methods and paths (SPEC §18.3) --------------------------------------------------------------------
async def test_options_on_every_handler_route_is_204(client, redis):
    for spec in registry.specs():
        for path in {spec.rest_path, spec.full_path}:
            plain = await client.options(path)
            assert plain.status_code == 204, path
            assert plain.content == b""
            preflight = await client.options(path, headers={
                "origin": "http://localhost:3001", "access-control-request-method": "POST"})
            assert preflight.status_code == 204, path
            assert "POST" in preflight.headers["access-control-allow-methods"]


async def test_get_on_a_rest_path_is_405(client, redis):
    for path in ("/task/create", "/system/health", "/task/list"):
        response = await client.get(path)
        assert response.status_code == 405, path
        assert "POST" in response.headers["allow"]
    assert (await client.put("/task/create", json={})).status_code == 405
    assert await Task.objects.acount() == 0


async def test_get_rpc_is_405(client, redis):
    for path in ("/rpc", "/rpc/batch"):
        response = await client.get(path)
        assert response.status_code == 405
        assert "POST" in response.headers["allow"]


async def test_unknown_path_is_404(client, redis):
    for path in ("/nope", "/task", "/task/nope", "/task/create/extra", "/tasks/create", "/rpc/other",
                 "/schemas", "/Task/Create", "/task/create/", "/favicon.ico", "/system"):
        assert (await client.post(path, json={"text": "x"})).status_code == 404, path
        assert (await client.get(path)).status_code == 404, path
    assert await Task.objects.acount() == 0


async def test_options_on_introspection_routes_is_204(client, redis):
    # SPEC §2.1: CORS applies to every route, so a preflight of GET /routes must succeed.
    for path in ("/", "/routes", "/handlers", "/schemas/task.create"):
        response = await client.options(path, headers={"origin": "http://localhost:3001",
                                                       "access-control-request-method": "GET"})
        assert response.status_code == 204, path
        assert "GET" in response.headers["access-control-allow-methods"]
    assert (await client.options("/nope")).status_code == 404


async def test_post_on_introspection_routes_is_405(client, redis):
    for path in ("/routes", "/handlers", "/schemas/task.create", "/"):
        assert (await client.post(path, json={})).status_code == 405, path


# --- introspection (SPEC §2.1, §2.4) -----------------------------------------------------------------
async def test_liveness_document(client, redis):
    response = await client.get("/", headers={"accept": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "service", "version", "timestamp"}
    assert body["status"] == "healthy" and body["service"] == "claudebench" and body["version"] == __version__
    assert is_iso(body["timestamp"])


async def test_routes_follow_spec_order(client, redis):
    body = (await client.get("/routes")).json()
    events = [r["event"] for r in body["routes"]]
    assert body["total"] == len(body["routes"]) == len(registry.specs())
    known = [e for e in events if e in SPEC_ORDER]
    assert known == sorted(known, key=SPEC_ORDER.index)
    assert events[:8] == ["task.create", "task.update", "task.assign", "task.unassign", "task.claim",
                          "task.complete", "task.list", "task.delete"]
    assert "system.health" in events
    first = body["routes"][0]
    assert first == {"method": "POST", "path": "/task/create", "event": "task.create",
                     "handler": "TaskCreateHandler", "description": first["description"]}
    assert isinstance(first["description"], str) and first["description"]
    for route in body["routes"]:
        assert route["path"] == "/" + "/".join(route["event"].split(".")[:2])


async def test_handlers_http_route_is_exactly_method_path_event(client, redis):
    body = (await client.get("/handlers")).json()
    assert body["total"] == len(body["handlers"]) == len(registry.specs())
    for entry in body["handlers"]:
        assert entry["httpRoute"] == {"method": "POST", "path": "/" + "/".join(entry["event"].split(".")[:2]),
                                      "event": entry["event"]}
        assert {"event", "className", "description", "persist", "rateLimit"} <= set(entry)
        assert "roles" not in entry  # SPEC §2.4.2: absent for all handlers
    by_event = {h["event"]: h for h in body["handlers"]}
    assert by_event["task.create"]["className"] == "TaskCreateHandler"
    assert by_event["task.create"]["persist"] is True and by_event["task.create"]["rateLimit"] == 10
    assert by_event["system.health"]["className"] == "SystemHealthHandler"
    assert [h["event"] for h in body["handlers"]] == [r["event"] for r in (await client.get("/routes")).json()["routes"]]


async def test_schema_of_task_create(client, redis):
    response = await client.get("/schemas/task.create")
    assert response.status_code == 200
    body = response.json()
    assert body["event"] == "task.create" and body["className"] == "TaskCreateHandler"
    schema_in = body["schemas"]["input"]
    assert schema_in["type"] == "object"
    assert {"text", "priority", "metadata"} <= set(schema_in["properties"])
    assert schema_in["required"] == ["text"]
    assert schema_in["properties"]["text"]["type"] == "string"
    assert schema_in["properties"]["text"]["maxLength"] == 500
    schema_out = body["schemas"]["output"]
    assert schema_out["type"] == "object" and "createdAt" in schema_out["properties"]


async def test_every_handler_has_a_schema_document(client, redis):
    for spec in registry.specs():
        response = await client.get(f"/schemas/{spec.event}")
        assert response.status_code == 200, spec.event
        assert response.json()["schemas"]["input"]["type"] == "object", spec.event


async def test_unknown_schema_is_404_with_exact_body(client, redis):
    response = await client.get("/schemas/nope")
    assert response.status_code == 404
    assert orjson.loads(response.content) == {"error": "Handler not found", "event": "nope"}
    for name in ("task.nope", "TASK.CREATE", "task.create.x", ""):
        response = await client.get(f"/schemas/{name}")
        assert response.status_code == 404, name
        assert response.json() == {"error": "Handler not found", "event": name}
