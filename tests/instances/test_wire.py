"""system.* over JSON-RPC: results validate against the shared contract; bad input is -32602."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)

# The contract ships next to the specification, outside this repository (as in tests/transport).
CONTRACT = Path(os.environ.get("CB_CONTRACTS_DIR", Path(settings.BASE_DIR).parent / "shared" / "contracts"))


def _contract() -> dict:
    path = CONTRACT / "jsonrpc-contract.json"
    if not path.exists():
        pytest.skip(f"JSON-RPC contract not found at {path} (set CB_CONTRACTS_DIR)")
    return json.loads(path.read_text())


def _check(method: str, request: dict, response: dict) -> None:
    contract = _contract()
    entry = contract["events"][method]
    for part, body in (("request", request), ("response", response)):
        schema = {**entry[part], "definitions": contract.get("definitions", {})}
        jsonschema.validate(body, schema)


@pytest.mark.parametrize("method, params", [
    ("system.health", {}),
    ("system.register", {"id": "w-1", "roles": ["worker"]}),
    ("system.heartbeat", {"instanceId": "w-1"}),
    ("system.heartbeat", {"instanceId": "nobody"}),
    ("system.get_state", {}),
    ("system.metrics", {}),
    ("system.metrics", {"detailed": True}),
])
async def test_results_validate_against_the_contract(rpc, method, params):
    await rpc("system.register", {"id": "w-1", "roles": ["worker"]})
    await rpc("task.create", {"text": "something to show"})
    request = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
    answer = await rpc(method, params)
    assert "result" in answer, answer
    _check(method, request, {**answer, "id": 1})


@pytest.mark.parametrize("method, params", [
    ("system.register", {"id": "w", "roles": "worker"}),
    ("system.quorum.vote", {"instanceId": "a", "decision": "d", "value": "v", "totalInstances": 0}),
    ("system.batch.process", {"batchId": "b", "instanceId": "p"}),
    ("system.postgres.query", {"table": "Task", "where": "1=1; DROP TABLE \"Task\""}),
    ("system.postgres.query", {"table": "Task", "limit": 1001}),
    ("system.redis.get", {"key": ""}),
    ("system.flush", {"confirm": "please"}),
    ("system.register", [1, 2, 3]),
])
async def test_bad_input_is_a_clear_jsonrpc_error(rpc, redis, method, params):
    answer = await rpc(method, params)
    assert answer["error"]["code"] == -32602, answer
    assert answer["error"]["data"]
    assert not await redis.keys("cb:instance:*") and not await redis.keys("cb:batch:*")


async def test_flush_refused_when_disabled_is_unauthorized_on_the_wire(rpc, settings):
    settings.CB_ALLOW_FLUSH = False
    answer = await rpc("system.flush", {"confirm": "FLUSH_ALL_DATA"})
    assert answer["error"]["code"] == -32002


async def test_an_unknown_table_is_a_handler_error_with_its_message(rpc):
    answer = await rpc("system.postgres.query", {"table": "Nope"})
    assert answer["error"]["code"] == -32603
    assert "not found" in json.dumps(answer["error"].get("data"))
