"""runworker background processing: notifications and pub/sub-triggered runs leave the web process."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from channels.layers import get_channel_layer

from claudebench.core import bus as core_bus
from claudebench.core import keys, triggers
from events.channel_layer import BackgroundChannelLayer

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


def notification(text: str, session: str = "sess-bg") -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": "task.create", "params": {"text": text},
                         "metadata": {"sessionId": session}})


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


async def test_a_runworker_waiting_for_messages_stops_within_a_second_or_two(redis, client, handoff, runworker):
    """Its receive waits in a BZPOPMIN loop that only a message ends; on SIGTERM the layer ends it at
    the next empty BZPOPMIN (≤ 1 s), well inside the supervisor's 10 s grace (it used to be >10 s)."""
    w = await runworker()
    for i in range(3):  # more than one: from the second on, the listener waits inside our layer's receive
        assert (await client.post("/rpc", content=notification(f"run {i}"))).status_code == 204
    await wait_until(lambda: _count(redis, 3), 30, "three background runs")
    await asyncio.sleep(0.5)  # nothing queued: the worker is waiting for messages
    started = time.monotonic()
    assert await asyncio.to_thread(w.stop) == 0, w.output()
    assert time.monotonic() - started < 8, w.output()  # supervisor's grace is 10 s
    assert "background worker stopped runs=3 handed_back=0" in w.output()


async def test_a_closed_receive_pops_nothing_more(redis, handoff):
    """close_receive(): the receive under way parks at its next empty BZPOPMIN; a message sent after
    that stays on the channel for the next worker."""
    layer = get_channel_layer()
    assert isinstance(layer, BackgroundChannelLayer)
    waiting = asyncio.create_task(layer.receive("cb-test-closed"))
    await asyncio.sleep(0.2)  # in its BZPOPMIN
    layer.close_receive()
    await asyncio.wait_for(layer.receive_settled(), 5)
    await layer.send("cb-test-closed", {"type": "cb.run", "n": 1})
    await asyncio.sleep(1.5)  # longer than one BZPOPMIN: had it gone on waiting, it would have the message
    assert not waiting.done()
    waiting.cancel()
    other = BackgroundChannelLayer(**handoff.CHANNEL_LAYERS["default"]["CONFIG"])
    assert (await asyncio.wait_for(other.receive("cb-test-closed"), 5))["n"] == 1


async def _count(redis, n: int) -> bool:
    return len(await created_texts(redis)) >= n
