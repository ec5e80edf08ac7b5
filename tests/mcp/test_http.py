"""/mcp over real HTTP with the SDK's own client against a live uvicorn server (SPEC §2.7)."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import mcp_types as types
import orjson
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from claudebench.core import keys, registry
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
NO_SESSION = {"jsonrpc": "2.0", "error": {"code": -32000,
                                          "message": "Bad Request: Invalid or missing session ID. Initialize first."}}


@contextlib.asynccontextmanager
async def connect(base: str) -> AsyncIterator[Client]:
    # The 2025 handshake: what Claude Code speaks, and the only era with sessions.
    async with Client(f"{base}/mcp", mode="legacy") as client:
        yield client


async def health(base: str) -> dict:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base}/mcp/health")
    assert response.status_code == 200
    return response.json()


def payload(result: types.CallToolResult) -> dict:
    assert not result.is_error, result.content
    [content] = result.content
    assert content.text == json.dumps(json.loads(content.text), indent=2, ensure_ascii=False)  # 2-space JSON
    return json.loads(content.text)


async def test_initialize_names_the_server_and_marks_the_service(uvicorn_server, redis):
    async with connect(uvicorn_server) as client:
        info = client.session.initialize_result
        assert info.server_info.name == "claudebench-mcp" and info.server_info.version == "0.1.0"
        caps = info.capabilities
        assert caps.tools and caps.prompts and caps.resources and caps.logging
        assert await redis.get(keys.SERVICE_MCP) == "ok"
        assert 0 < await redis.ttl(keys.SERVICE_MCP) <= 300
        assert int(await redis.get(keys.METRICS_MCP_CALLS)) == 1
        state = await health(uvicorn_server)
        assert state["status"] == "healthy" and state["activeSessions"] == 1 == state["transports"]
        assert len(state["sessions"]) == 1


async def test_tools_are_the_visible_handlers_of_the_registry(uvicorn_server, redis):
    expected = [s.event.replace(".", "__") for s in registry.specs() if s.mcp.visible]
    hidden = [s.event.replace(".", "__") for s in registry.specs() if not s.mcp.visible]
    async with connect(uvicorn_server) as client:
        listed = (await client.list_tools()).tools
    assert [t.name for t in listed] == expected
    assert len(listed) == len(expected)
    assert not set(hidden) & {t.name for t in listed}
    [create] = [t for t in listed if t.name == "task__create"]
    assert create.input_schema["required"] == ["text"]
    assert create.description.startswith("Create a pending task")


async def test_task_create_and_list_run_the_pipeline_as_the_session(uvicorn_server, redis):
    async with connect(uvicorn_server) as client:
        [session] = (await health(uvicorn_server))["sessions"]
        created = payload(await client.call_tool("task__create", {"text": "from claude code", "priority": 65}))
        listed = payload(await client.call_tool("task__list", {}))
    task_id = created["id"]
    assert created["status"] == "pending" and created["priority"] == 65
    assert (await redis.hgetall(keys.task(task_id)))["text"] == "from claude code"
    assert await redis.zscore(keys.PENDING_TASKS, task_id) is not None
    assert await Task.objects.filter(id=task_id, status="pending", priority=65).aexists()
    assert task_id in [t["id"] for t in listed["tasks"]]
    # The request record carries the MCP session id as the client id (SPEC §2.7, §3.2 step 3).
    [(_, fields)] = await redis.xrange(keys.stream("task.create"))
    assert orjson.loads(fields["data"])["metadata"]["clientId"] == session
    assert int(await redis.get(keys.METRICS_MCP_CALLS)) == 3  # initialize + two tool calls


async def test_bad_arguments_are_a_tool_error_and_store_nothing(uvicorn_server, redis):
    async with connect(uvicorn_server) as client:
        result = await client.call_tool("task__create", {"priority": "high"})
        unknown = await client.call_tool("task__nope", {})
        missing = await client.call_tool("task__complete", {"taskId": "t-404", "workerId": "w-1"})
    assert result.is_error
    text = result.content[0].text
    assert "Invalid arguments for task__create" in text
    assert "- text: Field required" in text and "- priority:" in text
    assert await redis.zcard(keys.PENDING_TASKS) == 0
    assert not [k async for k in redis.scan_iter(match=keys.TASK_PATTERN)]
    assert await Task.objects.acount() == 0
    assert unknown.is_error and unknown.content[0].text == "Unknown tool: task__nope"
    assert missing.is_error and "t-404" in missing.content[0].text


async def test_resources_list_and_read(uvicorn_server, redis):
    async with connect(uvicorn_server) as client:
        uris = {r.uri for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        task_id = payload(await client.call_tool("task__create", {"text": "look at me", "priority": 90}))["id"]

        async def read(uri: str) -> tuple[str, str]:
            [content] = (await client.read_resource(uri)).contents
            return content.mime_type, content.text

        tasks = json.loads((await read("swarm://tasks"))[1])
        pending = json.loads((await read("swarm://tasks/pending"))[1])
        view = json.loads((await read(f"task://view/{task_id}"))[1])
        unknown = json.loads((await read("task://view/t-1"))[1])
        index = await read("task://view/{taskId}")
        conflicts = json.loads((await read("swarm://conflicts"))[1])
        context = await read("swarm://context/st-1")
        decomposition = await read(f"swarm://decomposition/{task_id}")
        progress = json.loads((await read(f"swarm://progress/{task_id}"))[1])
        decompositions = json.loads((await read("swarm://decompositions"))[1])
        welcome = await read("claudebench://welcome")
        with pytest.raises(MCPError):
            await client.read_resource("nowhere://at/all")
    assert {"swarm://tasks", "swarm://tasks/pending", "swarm://conflicts", "claudebench://welcome"} <= uris
    assert "task://view/{taskId}" in templates and "swarm://progress/{taskId}" in templates
    assert tasks["total"] == 1 and tasks["tasks"][0]["id"] == task_id
    assert pending["nextTask"]["id"] == task_id and pending["total"] == 1
    assert view["id"] == task_id and view["isPending"] and not view["isAssigned"]
    assert view["attachments"] == {} and view["attachmentCount"] == 0 and view["age"].endswith("minutes")
    assert unknown == {"error": "Task not found: t-1", "availableTasks": [task_id]}
    assert index[0] == "text/plain" and task_id in index[1]
    assert conflicts == {"pendingConflicts": []}
    assert context == ("text/plain", "Error reading resource: Subtask not found: st-1")
    assert decomposition[1] == f"Error reading resource: No decomposition found for task {task_id}"
    assert progress == {"taskId": task_id, "taskText": "look at me", "overallProgress": 0,
                        "subtaskProgress": [], "integration": None}
    assert decompositions == {"decompositions": [], "total": 0}
    assert welcome[0] == "text/markdown" and welcome[1].startswith("# Welcome to ClaudeBench")
    assert "pending 1" in welcome[1]


async def test_prompts_list_and_get(uvicorn_server, redis):
    async with connect(uvicorn_server) as client:
        names = [p.name for p in (await client.list_prompts()).prompts]
        decompose = await client.get_prompt("decompose-task", {"task": "Add dark mode"})
        synthesis = await client.get_prompt("synthesize-progress", {
            "parentTask": "Dark mode",
            "completedSubtasks": '[{"id": "st-1", "specialist": "frontend", "output": "toggle done", "artifacts": ["a.css"]}]',
        })
        with pytest.raises(MCPError) as bad_json:
            await client.get_prompt("decompose-task", {"task": "x", "constraints": "[not json"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("resolve-conflict", {"projectType": "app"})
    assert names == ["decompose-task", "resolve-conflict", "synthesize-progress"]
    [message] = decompose.messages
    assert message.role == "user"
    text = message.content.text
    assert "Add dark mode" in text and "Priority: 75" in text
    assert "Maintain existing design system" in text and "worker-3 (testing)" in text
    assert "toggle done" in synthesis.messages[0].content.text
    assert bad_json.value.code == -32602 and "constraints" in bad_json.value.message
    assert missing.value.code == -32602
    assert missing.value.message == "Missing required arguments: requirements, solutions"


async def test_session_errors_have_the_original_shapes(uvicorn_server, redis):
    async with httpx.AsyncClient(base_url=uvicorn_server) as http:
        no_session = await http.post("/mcp", headers=ACCEPT, json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
        stale = await http.post("/mcp", headers={**ACCEPT, "mcp-session-id": "gone"},
                                json={"jsonrpc": "2.0", "id": "a", "method": "tools/list"})
        get = await http.get("/mcp", headers={"accept": "text/event-stream"})
        delete = await http.delete("/mcp")
        delete_unknown = await http.delete("/mcp", headers={"mcp-session-id": "never-existed"})
        preflight = await http.options("/mcp")
    assert (no_session.status_code, no_session.json()) == (400, {**NO_SESSION, "id": 7})
    assert (stale.status_code, stale.json()) == (400, {**NO_SESSION, "id": "a"})
    assert (get.status_code, get.text) == (400, "Invalid or missing session ID")
    assert (delete.status_code, delete.text) == (400, "Missing session ID")
    assert delete_unknown.status_code == 200
    assert delete_unknown.json() == {"jsonrpc": "2.0", "id": None, "result": {
        "message": "Session terminated successfully", "sessionId": "never-existed"}}
    assert preflight.status_code == 204
    assert "mcp-session-id" in preflight.headers["access-control-allow-headers"]
    assert await redis.get(keys.SERVICE_MCP) is None  # none of these counted as MCP activity


async def test_delete_ends_the_session(uvicorn_server, redis):
    async with httpx.AsyncClient(base_url=uvicorn_server) as http:
        opened = await http.post("/mcp", headers=ACCEPT, json=INIT)
        session = opened.headers["mcp-session-id"]
        assert opened.status_code == 200
        assert opened.headers["access-control-expose-headers"] == "Mcp-Session-Id"
        assert uuid.UUID(session).version == 4
        assert session in (await health(uvicorn_server))["sessions"]
        assert 0 < await redis.ttl(keys.mcp_session(session)) <= 86_400  # idle sessions expire
        ended = await http.delete("/mcp", headers={"mcp-session-id": session})
        after = await http.post("/mcp", headers={**ACCEPT, "mcp-session-id": session},
                                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert ended.status_code == 200
    assert ended.json()["result"] == {"message": "Session terminated successfully", "sessionId": session}
    assert session not in (await health(uvicorn_server))["sessions"]
    assert (after.status_code, after.json()) == (400, {**NO_SESSION, "id": 2})


async def test_the_sdk_client_ends_its_session_on_exit(uvicorn_server, redis):
    async with connect(uvicorn_server) as client:
        await client.list_tools()
        assert (await health(uvicorn_server))["activeSessions"] == 1
    assert (await health(uvicorn_server))["activeSessions"] == 0


async def test_a_client_that_probes_the_2026_protocol_falls_back_to_a_session(uvicorn_server, redis):
    # mode="auto" first sends server/discover without a session; the 400 sends it to initialize.
    async with Client(f"{uvicorn_server}/mcp") as client:
        assert client.session.initialize_result is not None
        assert (await client.call_tool("task__create", {"text": "auto"})).is_error is False


async def test_get_streams_pings_until_the_session_ends(uvicorn_server, redis):
    async with httpx.AsyncClient(base_url=uvicorn_server, timeout=10) as http:
        session = (await http.post("/mcp", headers=ACCEPT, json=INIT)).headers["mcp-session-id"]
        async with http.stream("GET", "/mcp", headers={"accept": "text/event-stream",
                                                       "mcp-session-id": session}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            async for line in lines:
                if line == "event: ping":
                    break
            ping = json.loads((await anext(lines)).removeprefix("data: "))
            assert abs(ping["timestamp"] - time.time() * 1000) < 60_000
            assert (await http.delete("/mcp", headers={"mcp-session-id": session})).status_code == 200
            rest = [line async for line in lines]  # the stream ends once the session is gone
    assert "event: ping" not in rest[1:]


async def test_sessions_are_shared_by_every_server_process(uvicorn_server, daphne_server, redis):
    # `up` runs several web workers; a session opened on one must work on the others.
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(f"{uvicorn_server}/mcp", headers=ACCEPT, json=INIT)
        session = opened.headers["mcp-session-id"]
        elsewhere = await http.post(f"{daphne_server}/mcp", headers={**ACCEPT, "mcp-session-id": session},
                                    json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        assert session in (await http.get(f"{daphne_server}/mcp/health")).json()["sessions"]
        await http.delete(f"{daphne_server}/mcp", headers={"mcp-session-id": session})
        after = await http.post(f"{uvicorn_server}/mcp", headers={**ACCEPT, "mcp-session-id": session},
                                json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
    assert elsewhere.status_code == 200 and elsewhere.headers["mcp-session-id"] == session
    assert '"task__create"' in elsewhere.text
    assert (after.status_code, after.json()) == (400, {**NO_SESSION, "id": 4})


async def test_the_rate_limit_window_belongs_to_the_mcp_session(uvicorn_server, redis):
    if not hasattr(keys, "ratelimit"):
        pytest.skip("the rate-limit layer is not in this tree")
    async with connect(uvicorn_server) as client:
        [session] = (await health(uvicorn_server))["sessions"]
        payload(await client.call_tool("task__create", {"text": "counted"}))
    # SPEC §2.7: the MCP session id is the client id, so the window is this session's own.
    assert await redis.zcard(keys.ratelimit("task.create", session)) == 1


async def test_every_tool_refuses_missing_required_arguments(uvicorn_server, redis):
    needy = [s for s in registry.specs() if s.mcp.visible and s.input.model_json_schema().get("required")]
    assert needy
    async with connect(uvicorn_server) as client:
        results = {s.event: await client.call_tool(s.event.replace(".", "__"), {}) for s in needy}
    for event, result in results.items():
        assert result.is_error, event
        assert result.content[0].text.startswith(f"Invalid arguments for {event.replace('.', '__')}"), event
    assert await Task.objects.acount() == 0
    assert not [k async for k in redis.scan_iter(match=keys.TASK_PATTERN)]


async def test_malformed_requests_get_clear_errors(uvicorn_server, redis):
    async with httpx.AsyncClient(base_url=uvicorn_server, timeout=10) as http:
        wrong_accept = await http.post("/mcp", headers={"content-type": "application/json", "accept": "text/html"},
                                       json=INIT)
        sessions_after_refusal = (await health(uvicorn_server))["activeSessions"]
        too_big = await http.post("/mcp", headers=ACCEPT, content=b'{"jsonrpc":"2.0","id":1,"method":"initialize",'
                                  + b'"params":{"x":"' + b"a" * 70_000 + b'"}}')
        session = (await http.post("/mcp", headers=ACCEPT, json=INIT)).headers["mcp-session-id"]
        not_json = await http.post("/mcp", headers={**ACCEPT, "mcp-session-id": session}, content=b"{nope")
        not_json_no_session = await http.post("/mcp", headers=ACCEPT, content=b"{nope")
        put = await http.put("/mcp", headers={"mcp-session-id": session})
    assert wrong_accept.status_code == 406 and sessions_after_refusal == 0
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == -32600
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == -32700
    assert (not_json_no_session.status_code, not_json_no_session.json()) == (400, {**NO_SESSION, "id": None})
    assert put.status_code == 405 and put.headers["allow"] == "GET, POST, DELETE, OPTIONS"
    assert (await health(uvicorn_server))["activeSessions"] == 1  # only the good initialize opened one
