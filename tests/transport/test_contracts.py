"""Answers validated against the original's JSON-RPC contract (contracts/jsonrpc-contract.json).

The contract ships next to the specification, outside this repository. Point CB_CONTRACTS_DIR at
it; by default it is `<repo>/../shared/contracts`. Without it these tests are skipped (and say so).

Every call below also validates the *request* we send against the contract's request schema where
one exists, and the result against the output schema the server itself publishes under
`/schemas/{event}`, so the three descriptions cannot drift apart unnoticed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from claudebench.core.clock import parse_iso
from tests.factories import TASK_DB, register_instance

jsonschema = pytest.importorskip("jsonschema")

pytestmark = TASK_DB

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = Path(os.environ.get("CB_CONTRACTS_DIR", REPO_ROOT.parent / "shared" / "contracts"))
CONTRACT_FILE = CONTRACTS_DIR / "jsonrpc-contract.json"

if not CONTRACT_FILE.is_file():
    pytest.skip(f"JSON-RPC contract not found at {CONTRACT_FILE} (set CB_CONTRACTS_DIR)", allow_module_level=True)

CONTRACT: dict[str, Any] = orjson.loads(CONTRACT_FILE.read_bytes())


def _with_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """A contract fragment made standalone: its `#/definitions/...` refs point into the contract."""
    return {**schema, "definitions": CONTRACT["definitions"]}


def validate(instance: Any, schema: dict[str, Any]) -> None:
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER).validate(instance)


class Wire:
    """Posts requests and checks request, answer and result against every schema that applies."""

    def __init__(self, client) -> None:
        self.client = client
        self.n = 0
        self.output_schemas: dict[str, dict[str, Any]] = {}

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        request = {"jsonrpc": "2.0", "method": method, "params": params, "id": self.n}
        validate(request, _with_definitions(CONTRACT["definitions"]["jsonrpcRequest"]))
        contract = CONTRACT["events"].get(method, {})
        if "request" in contract:
            validate(request, _with_definitions(contract["request"]))
        response = await self.client.post("/rpc", content=orjson.dumps(request))
        assert response.status_code == 200
        answer = response.json()
        validate(answer, _with_definitions(CONTRACT["definitions"]["jsonrpcResponse"]))
        assert "result" in answer, answer
        if "response" in contract:
            validate(answer, _with_definitions(contract["response"]))
        validate(answer["result"], await self.output_schema(method))
        return answer["result"]

    async def output_schema(self, method: str) -> dict[str, Any]:
        if method not in self.output_schemas:
            body = (await self.client.get(f"/schemas/{method}")).json()
            self.output_schemas[method] = body["schemas"]["output"]
        return self.output_schemas[method]


@pytest.fixture
def wire(client) -> Wire:
    return Wire(client)


def assert_iso(text: str) -> None:
    # The contract's "format": "date-time" is only enforced with an optional checker; check it here.
    assert text.endswith("Z")
    assert parse_iso(text).utcoffset() is not None


async def test_system_health_matches_the_contract(wire, redis):
    result = await wire.call("system.health", {})
    assert set(result["services"]) == {"redis", "postgres", "mcp"}
    assert result["services"]["redis"] is True and result["services"]["postgres"] is True


async def test_task_lifecycle_results_match_the_contract(wire, redis):
    created = await wire.call("task.create", {"text": "contract check", "priority": 70})
    assert_iso(created["createdAt"])
    task_id = created["id"]

    updated = await wire.call("task.update", {"id": task_id, "updates": {"text": "contract check 2"}})
    assert set(updated) == {"id", "text", "status", "priority", "createdAt", "updatedAt"}

    await register_instance(redis, "w-contract")
    assigned = await wire.call("task.assign", {"taskId": task_id, "instanceId": "w-contract"})
    assert set(assigned) == {"taskId", "instanceId", "assignedAt"}
    assert_iso(assigned["assignedAt"])

    unassigned = await wire.call("task.unassign", {"taskId": task_id})
    assert unassigned["previousAssignment"] == "w-contract"

    claimed = await wire.call("task.claim", {"workerId": "w-contract"})
    assert claimed["claimed"] is True and claimed["taskId"] == task_id

    # The contract's task.complete request lists `id` as required; SPEC §9.4 also accepts `taskId`.
    completed = await wire.call("task.complete", {"id": task_id, "result": {"ok": True}})
    # SPEC §16 row 20 (deliberate divergence from the original): completing sets `completed`.
    assert completed["status"] == "completed"
    assert_iso(completed["completedAt"])

    listed = await wire.call("task.list", {"status": "completed"})
    assert listed["totalCount"] == 1 and listed["tasks"][0]["id"] == task_id

    deleted = await wire.call("task.delete", {"id": task_id})
    assert deleted["deleted"] is True and deleted["id"] == task_id


async def test_claim_with_nothing_to_claim_matches_its_schema(wire, redis):
    await register_instance(redis, "w-idle")
    assert await wire.call("task.claim", {"workerId": "w-idle"}) == {"claimed": False}


async def test_error_answers_match_the_contract_envelope_and_codes(client, redis):
    cases = [
        (b"{", -32700, "Parse error"),
        (b"42", -32600, "Invalid request"),
        (orjson.dumps({"jsonrpc": "2.0", "method": "no.such", "id": 1}), -32601, "Method not found: no.such"),
        # SPEC §18 wins over the contract's errorCodes texts: clients get "Invalid parameters", not
        # "Invalid params", and the method name is part of -32601's message.
        (orjson.dumps({"jsonrpc": "2.0", "method": "task.create", "params": {"text": ""}, "id": 2}), -32602,
         "Invalid parameters"),
        (orjson.dumps({"jsonrpc": "2.0", "method": "task.update", "params": {"id": "t-9", "updates": {}}, "id": 3}),
         -32603, "Internal error"),
    ]
    schema = _with_definitions(CONTRACT["definitions"]["jsonrpcResponse"])
    for body, code, message in cases:
        response = await client.post("/rpc", content=body)
        assert response.status_code == 200
        answer = response.json()
        validate(answer, schema)
        assert answer["error"]["code"] == code and answer["error"]["message"] == message
        assert str(code) in CONTRACT["errorCodes"]


async def test_non_object_params_is_invalid_params_not_invalid_request(client, redis):
    # The contract types `params` as an object, which would make [1] an invalid *request* (-32600).
    # SPEC §18.1 and contracts/README say otherwise: any JSON value passes the envelope and the
    # handler's input schema answers -32602.
    body = orjson.dumps({"jsonrpc": "2.0", "method": "task.create", "params": [1], "id": 1})
    answer = (await client.post("/rpc", content=body)).json()
    assert answer["error"]["code"] == -32602
