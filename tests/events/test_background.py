"""runworker background processing: notifications and pub/sub-triggered runs leave the web process."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from claudebench.core import bus as core_bus
from claudebench.core import keys, triggers

from .conftest import wait_until
from .procs import Worker, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def runworker():
    started: list[Worker] = []

    async def start() -> Worker:
        w = Worker("runworker", "cb-background", env=worker_env(CB_BACKGROUND_HANDOFF="1"))
        started.append(w)
        await wait_until(lambda: "Running worker for channels" in w.output() or w.proc.poll() is not None, 30)
        assert w.proc.poll() is None, w.output()
        return w

    yield start
    for w in started:
        w.close()


async def created_texts(redis) -> list[str]:
    entries = await redis.xrange(keys.stream("task.created"))
    return [orjson.loads(f["data"])["payload"]["text"] for _, f in entries]


async def test_without_handoff_a_notification_runs_in_the_web_process(redis, client, settings):
    settings.CB_BACKGROUND_HANDOFF = False
    body = {"jsonrpc": "2.0", "method": "task.create", "params": {"text": "inline"}}
    response = await client.post("/rpc", content=orjson.dumps(body))
    assert response.status_code == 204
    assert await created_texts(redis) == ["inline"]


async def test_notifications_are_executed_by_runworker(redis, client, handoff, runworker):
    w = await runworker()
    body = {"jsonrpc": "2.0", "method": "task.create", "params": {"text": "from the background"},
            "metadata": {"sessionId": "sess-bg"}}
    response = await client.post("/rpc", content=orjson.dumps(body))
    assert response.status_code == 204
    await wait_until(lambda: _has(redis, "from the background"), 30, "the background run")

    # Bad notifications are still answered from the web process, and nothing is queued for them.
    bad = await client.post("/rpc", content=orjson.dumps({"jsonrpc": "2.0", "method": "no.such"}))
    assert bad.json()["error"]["code"] == -32601
    invalid = await client.post("/rpc", content=orjson.dumps(
        {"jsonrpc": "2.0", "method": "task.create", "params": {"text": ""}}))
    assert invalid.json()["error"]["code"] == -32602
    assert await asyncio.to_thread(w.stop) == 0, w.output()
    assert "background worker stopped runs=1" in w.output()


async def test_pubsub_triggered_runs_are_executed_by_runworker(redis, handoff, runworker):
    await runworker()
    env = core_bus.envelope("task.create", {"text": "triggered"})
    assert await triggers.dispatch("task.create", orjson.dumps(env).decode()) is True
    assert await triggers.dispatch("task.create", orjson.dumps(env).decode()) is False  # once per envelope
    await wait_until(lambda: _has(redis, "triggered"), 30, "the triggered run")
    assert await created_texts(redis) == ["triggered"]


async def _has(redis, text: str) -> bool:
    return text in await created_texts(redis)
