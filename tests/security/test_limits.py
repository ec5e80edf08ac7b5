"""Limits on what a caller sends: each refused with a clear error, counted, the server unharmed."""

from __future__ import annotations

import pytest

from claudebench.core import metrics
from tasks.models import Task
from tests.security.conftest import rpc_body

pytestmark = pytest.mark.django_db(transaction=True)


def refused(reason: str) -> float:
    return metrics.REFUSED.labels(reason)._value.get()


async def _still_healthy(client) -> None:
    answer = await client.post("/rpc", json=rpc_body("task.create", {"text": "after"}))
    assert "result" in answer.json(), answer.text


async def test_body_size(local, redis, settings):
    settings.CB_MAX_BODY_BYTES = 1024
    before = refused("body_size")
    big = rpc_body("task.create", {"text": "x" * 400, "metadata": {"pad": "y" * 2000}})
    answer = await local.post("/rpc", json=big)
    assert answer.status_code == 413
    assert answer.json()["error"] == {"code": -32600, "message": "Invalid request", "data": "limit is 1024 bytes"}
    rest = await local.post("/task/create", json={"text": "x", "pad": "y" * 2000})
    assert rest.status_code == 413 and rest.json()["error"] == "Request body too large"
    assert refused("body_size") == before + 2
    assert not await Task.objects.aexists()
    await _still_healthy(local)


@pytest.mark.parametrize("depth", [300, 2000])
async def test_json_nesting_depth(local, redis, depth):
    before = refused("json_depth")
    nested = "[" * depth + "]" * depth
    body = '{"jsonrpc":"2.0","method":"task.create","params":{"text":"x","metadata":{"n":' + nested + '}},"id":1}'
    answer = await local.post("/rpc", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    error = answer.json()["error"]
    assert error["code"] == -32700 and "deeper than 254" in error["data"]
    assert refused("json_depth") == before + 1
    assert not await Task.objects.aexists()
    await _still_healthy(local)


async def test_depth_within_the_limit_and_brackets_in_strings_pass(local, redis):
    nested = "[" * 200 + "]" * 200
    body = ('{"jsonrpc":"2.0","method":"task.create","params":{"text":"' + "[" * 300 + '","metadata":{"n":'
            + nested + '}},"id":1}')
    answer = await local.post("/rpc", content=body)
    assert "result" in answer.json(), answer.text


async def test_batch_length(local, redis, settings):
    settings.CB_MAX_BATCH_LENGTH = 3
    before = refused("batch_length")
    answer = await local.post("/rpc/batch", json=[rpc_body("task.list", {}, rid=i) for i in range(4)])
    assert answer.status_code == 200
    assert answer.json()["error"] == {"code": -32600, "message": "Batch longer than 3 requests"}
    assert refused("batch_length") == before + 1
    ok = await local.post("/rpc/batch", json=[rpc_body("task.list", {}, rid=i) for i in range(3)])
    assert len(ok.json()) == 3
    await _still_healthy(local)


async def test_string_length_from_the_schema(local, redis):
    before = refused("string_length")
    answer = await local.post("/rpc", json=rpc_body("task.create", {"text": "é" * 501}))
    error = answer.json()["error"]
    assert error["code"] == -32602 and error["data"][0]["path"] == ["text"]
    assert "500" in error["data"][0]["message"]
    assert refused("string_length") == before + 1
    assert not await Task.objects.aexists()
    await _still_healthy(local)


async def test_refusals_are_exported_on_metrics(local, redis):
    await local.post("/rpc", json=rpc_body("task.create", {"text": "é" * 501}))
    text = (await local.get("/metrics")).text
    assert 'claudebench_requests_refused_total{reason="string_length"}' in text


@pytest.mark.parametrize("levels", [300, 3000])
async def test_json_nesting_depth_on_mcp(local, redis, levels):
    from claudebench.transport import mcp

    before = refused("json_depth")
    nested = "[" * levels + "]" * levels
    body = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":' + nested + "}}"
    answer = await local.post("/mcp", content=body, headers={"accept": "application/json, text/event-stream",
                                                             "content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32700 and "deeper than 254" in answer.json()["error"]["message"]
    assert refused("json_depth") == before + 1
    assert [k async for k in redis.scan_iter(match="cb:mcp:session:*")] == []
    await mcp.shutdown()
