"""/mcp: tokens and scopes reach tool calls made through the MCP SDK (issue 10)."""

from __future__ import annotations

import json

import pytest

from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def _messages(body: str) -> list[dict]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ") and line[6:].strip()]


@pytest.fixture
async def mcp_remote(remote):
    from claudebench.transport import mcp

    yield remote
    await mcp.shutdown()


async def test_agent_token_cannot_call_an_admin_tool(mcp_remote, redis, issue):
    _row, token = await issue("agent")
    headers = {**HEADERS, **bearer(token)}
    opened = await mcp_remote.post("/mcp", headers=headers, json=INIT)
    assert opened.status_code == 200, opened.text
    headers = {**headers, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await redis.set("cb:canary", "1")
    called = await mcp_remote.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "system__flush", "arguments": {"confirm": "FLUSH_ALL_DATA"}}})
    [answer] = _messages(called.text)
    assert answer["result"]["isError"] is True
    assert "admin scope" in answer["result"]["content"][0]["text"]
    assert await redis.get("cb:canary") == "1"
    listed = await mcp_remote.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "task__list", "arguments": {}}})
    assert _messages(listed.text)[0]["result"]["isError"] is False
