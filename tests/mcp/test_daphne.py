"""/mcp under daphne, which sends no ASGI lifespan: the session manager starts on first use."""

from __future__ import annotations

import json

import httpx
import pytest
from mcp import Client

from claudebench.core import keys, registry
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


async def test_mcp_works_without_a_lifespan(daphne_server, redis):
    async with httpx.AsyncClient() as http:
        before = (await http.get(f"{daphne_server}/mcp/health")).json()
    assert before == {"status": "healthy", "activeSessions": 0, "sessions": [], "transports": 0}
    async with Client(f"{daphne_server}/mcp", mode="legacy") as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("task__create", {"text": "served by daphne"})
        async with httpx.AsyncClient() as http:
            during = (await http.get(f"{daphne_server}/mcp/health")).json()
    assert len(tools) == len([s for s in registry.specs() if s.mcp.visible])
    assert not result.is_error
    task_id = json.loads(result.content[0].text)["id"]
    assert await redis.exists(keys.task(task_id))
    assert await Task.objects.filter(id=task_id).aexists()
    assert during["activeSessions"] == 1
