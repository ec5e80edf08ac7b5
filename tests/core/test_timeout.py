"""Timeout layer (SPEC §3.7, §16 row 17): the body is cancelled, its late side effects never happen."""

from __future__ import annotations

import asyncio

import pytest

from claudebench.core import keys
from claudebench.core.errors import HandlerTimeout
from claudebench.core.registry import Limits
from claudebench.core.schema import Empty, Out

pytestmark = pytest.mark.django_db(transaction=True)


class _Done(Out):
    done: bool


@pytest.fixture
def slow_write(temp_handler):
    progress = {"started": 0, "finished": 0}

    async def slow(ctx, data):
        progress["started"] += 1
        await asyncio.sleep(0.3)
        progress["finished"] += 1
        await ctx.publish("test.slow_write.done", {"late": True})
        return {"done": True}

    temp_handler("test.slow_write", slow, input=Empty, output=_Done,
                 limits=Limits(timeout_ms=50, trip_after=5, open_ms=1_000))
    return progress


async def test_timed_out_handler_is_cancelled(slow_write, call, redis, stream_events, settle):
    with pytest.raises(HandlerTimeout, match="Operation timed out after 50ms"):
        await call("test.slow_write", {})
    await asyncio.sleep(0.5)                                 # past the moment the body would have ended
    assert slow_write == {"started": 1, "finished": 0}
    assert await stream_events("test.slow_write.done") == []
    await settle()
    counters = await redis.hgetall(keys.METRICS_COUNTERS)
    assert counters["timeout:test.slow_write:exceeded"] == "1"
    assert counters["circuit:test.slow_write:failure"] == "1"
    audit = [f for _, f in await redis.xrange(keys.AUDIT_GENERAL)]
    assert [f["action"] for f in audit] == ["timeout.exceeded", "test.slow_write"]
    assert audit[1]["result"] == "failure"
    assert audit[1]["reason"] == "Operation timed out after 50ms"


async def test_timeout_is_an_internal_error_with_a_clear_message(slow_write, rpc, client):
    answer = await rpc("test.slow_write", {})
    assert answer["error"] == {"code": -32603, "message": "Internal error",
                               "data": "Operation timed out after 50ms"}
    rest = await client.post("/test/slow_write", content=b"{}")
    assert rest.status_code == 500
    assert rest.json()["message"] == "Operation timed out after 50ms"


async def test_calls_within_the_timeout_complete(slow_write, limits, call):
    limits("test.slow_write", timeout_ms=2_000)
    assert await call("test.slow_write", {}) == {"done": True}
    assert slow_write["finished"] == 1
