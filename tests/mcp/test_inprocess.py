"""/mcp in-process through the ASGI router, without a lifespan (as under daphne)."""

from __future__ import annotations

import json

import pytest

from claudebench.core import keys
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def _messages(body: str) -> list[dict]:
    """JSON-RPC messages of an SSE response body."""
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")
            and line[len("data: "):].strip()]


async def test_initialize_then_call_a_tool(mcp_client, redis):
    opened = await mcp_client.post("/mcp", headers=HEADERS, json=INIT)
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    [init] = _messages(opened.text)
    assert init["result"]["serverInfo"] == {"name": "claudebench-mcp", "version": "0.1.0"}
    assert init["result"]["protocolVersion"] == "2025-11-25"
    headers = {**HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    initialized = await mcp_client.post("/mcp", headers=headers,
                                        json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert initialized.status_code == 202
    called = await mcp_client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "task__create", "arguments": {"text": "in process", "priority": 5}},
    })
    assert called.status_code == 200 and called.headers["mcp-session-id"] == session
    [answer] = _messages(called.text)
    result = answer["result"]
    assert result["isError"] is False
    [content] = result["content"]
    task = json.loads(content["text"])
    assert content["type"] == "text" and content["text"] == json.dumps(task, indent=2, ensure_ascii=False)
    assert await redis.exists(keys.task(task["id"]))
    assert await Task.objects.filter(id=task["id"], priority=5).aexists()


async def test_health_counts_sessions_without_starting_anything(mcp_client, redis):
    answer = await mcp_client.get("/mcp/health")
    assert answer.json() == {"status": "healthy", "activeSessions": 0, "sessions": [], "transports": 0}
    assert (await mcp_client.post("/mcp/health")).status_code == 405
