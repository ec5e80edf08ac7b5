"""Wire rules that hold for every registered handler, on JSON-RPC and REST (STYLE §9, SPEC §18.1-18.2)."""

from __future__ import annotations

import orjson
import pytest

from claudebench.core import keys, registry
from tasks.models import Task
from tests.factories import TASK_DB

pytestmark = TASK_DB

EVENTS = [spec.event for spec in registry.specs()]


@pytest.mark.parametrize("event", EVENTS)
async def test_non_object_params_and_unstorable_strings_are_invalid_params(client, redis, event):
    task = (await client.post("/task/create", json={"text": "bystander"})).json()["data"]
    path = registry.get(event).full_path  # unique per handler (the two-segment path may collide)
    for n, params in enumerate(([1, 2, 3], "text", 42, True)):
        body = orjson.dumps({"jsonrpc": "2.0", "method": event, "params": params, "id": n})
        answer = (await client.post("/rpc", content=body)).json()
        assert answer["id"] == n and answer["error"]["code"] == -32602, (event, params, answer)
        rest = await client.post(path, content=orjson.dumps(params))
        assert rest.status_code == 400 and rest.json()["event"] == event, (event, params, rest.text)
    body = orjson.dumps({"jsonrpc": "2.0", "method": event, "params": {"bad\u0000key": "x"}, "id": "nul"})
    answer = (await client.post("/rpc", content=body)).json()
    assert answer["error"]["code"] == -32602 and answer["id"] == "nul", (event, answer)
    # The bystander task is intact whatever was sent.
    assert await redis.hget(keys.task(task["id"]), "text") == "bystander"
    assert await Task.objects.filter(id=task["id"], text="bystander").aexists()
