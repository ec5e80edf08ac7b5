"""Rate-limit layer (SPEC §3.8, §16 row 16): atomic sliding window per handler and actor."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from claudebench.core import keys
from claudebench.core.errors import InvalidParams, RateLimited
from claudebench.core.schema import Empty, Out
from tests.core.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


async def _burst(call, n: int, **meta) -> tuple[int, int]:
    """n concurrent test.circuit calls; returns (admitted, rate-limited)."""
    results = await asyncio.gather(*(call("test.circuit", {}, **meta) for _ in range(n)), return_exceptions=True)
    limited = sum(isinstance(r, RateLimited) for r in results)
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, RateLimited)]
    assert not others, others
    return n - limited, limited


async def test_admits_exactly_the_limit_per_actor_under_concurrency(circuit_on, limits, call, redis, settle):
    limits("test.circuit", rate=7)
    bursts = await asyncio.gather(*(_burst(call, 25, session_id=f"s-{i}") for i in range(4)))
    assert bursts == [(7, 18)] * 4                       # no over-admission, no cross-actor leak
    for i in range(4):
        assert await redis.zcard(keys.ratelimit("test.circuit", f"s-{i}")) == 7
    await settle()
    counters = await redis.hgetall(keys.METRICS_COUNTERS)
    assert counters["ratelimit:test.circuit:allowed"] == "28"
    assert counters["ratelimit:test.circuit:blocked"] == "72"


async def test_actor_falls_back_to_client_address_then_instance(circuit_on, limits, call, redis, settings):
    limits("test.circuit", rate=1)
    await call("test.circuit", {}, client_addr="10.0.0.1")
    await call("test.circuit", {}, client_addr="10.0.0.2")
    with pytest.raises(RateLimited):
        await call("test.circuit", {}, client_addr="10.0.0.1")
    await call("test.circuit", {})                       # nothing known: the server's own id
    assert await redis.zcard(keys.ratelimit("test.circuit", settings.INSTANCE_ID)) == 1


async def test_window_slides(circuit_on, limits, call):
    limits("test.circuit", rate=2, per_ms=1_000)
    await call("test.circuit", {}, session_id="w")
    await call("test.circuit", {}, session_id="w")
    with pytest.raises(RateLimited) as err:
        await call("test.circuit", {}, session_id="w")
    assert "2 requests per 1000ms" in err.value.detail

    async def admitted() -> bool:
        try:
            await call("test.circuit", {}, session_id="w")
        except RateLimited:
            return False
        return True

    await wait_for(admitted, timeout_s=3)


async def test_rpc_answers_32000_and_rest_429_before_the_handler_runs(circuit_on, limits, rpc, client, redis):
    limits("test.circuit", rate=1)
    ok = await rpc("test.circuit", {}, metadata={"sessionId": "rpc-1"})
    assert ok["result"]["success"] is True
    refused = await rpc("test.circuit", {}, metadata={"sessionId": "rpc-1"})
    assert refused["error"] == {"code": -32000, "message": "Rate limit exceeded"}
    first = await client.post("/test/circuit", content=b"{}")      # REST actor: the client address
    second = await client.post("/test/circuit", content=b"{}")
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json() == {"success": False, "error": "Rate limit exceeded", "event": "test.circuit"}
    # SPEC §3.2 step 3: every call leaves a request record, refused ones too.
    records = [orjson.loads(f["data"]) for _, f in await redis.xrange(keys.stream("test.circuit"))]
    assert len(records) == 4
    assert all(r["metadata"]["kind"] == "request" for r in records)


async def test_invalid_params_take_no_slot(circuit_on, limits, call, redis):
    limits("test.circuit", rate=1)
    with pytest.raises(InvalidParams):
        await call("test.circuit", {"shouldFail": "yes"}, session_id="bad")
    assert await redis.zcard(keys.ratelimit("test.circuit", "bad")) == 0
    assert (await call("test.circuit", {}, session_id="bad"))["success"] is True


async def test_rejections_never_count_against_the_breaker(circuit_on, limits, call, redis, settle):
    limits("test.circuit", rate=1)
    for _ in range(10):
        try:
            await call("test.circuit", {}, session_id="r")
        except RateLimited:
            pass
    await settle()
    assert await redis.get(keys.circuit("test.circuit", "state")) is None
    assert await redis.get(keys.circuit("test.circuit", "failures")) is None


class _Count(Out):
    calls: int


async def test_nested_calls_do_not_consume_the_callers_limit(circuit_on, limits, temp_handler, call, redis):
    """Decision (SPEC §10.5 note): ctx.call runs the full pipeline except the rate limiter."""

    async def fan_out(ctx, data):
        for _ in range(5):
            await ctx.call("test.circuit", {})
        return {"calls": 5}

    temp_handler("test.fan_out", fan_out, input=Empty, output=_Count, mutating=False)
    limits("test.circuit", rate=2)
    assert (await call("test.fan_out", {}, session_id="outer"))["calls"] == 5
    assert await redis.zcard(keys.ratelimit("test.circuit", "outer")) == 0
    await call("test.circuit", {}, session_id="outer")
    await call("test.circuit", {}, session_id="outer")
    with pytest.raises(RateLimited):
        await call("test.circuit", {}, session_id="outer")


@pytest.mark.parametrize("raw", ['{"task.create": 5}', "[1]", "{", '{"task.create": {"rats": 5}}',
                                 '{"task.create": {"rate": 0}}', '{"task.create": {"rate": "5"}}',
                                 '{"task.create": {"rate": true}}'])
def test_bad_limit_overrides_stop_start_up_with_a_clear_message(monkeypatch, raw):
    from django.core.exceptions import ImproperlyConfigured

    from claudebench import settings as project_settings

    monkeypatch.setenv("CB_LIMIT_OVERRIDES", raw)
    with pytest.raises(ImproperlyConfigured, match="CB_LIMIT_OVERRIDES"):
        project_settings._limit_overrides("CB_LIMIT_OVERRIDES")


def test_limit_overrides_accept_fields_and_null(monkeypatch):
    from claudebench import settings as project_settings

    monkeypatch.setenv("CB_LIMIT_OVERRIDES", '{"task.create": {"rate": 5, "per_ms": 1000, "timeout_ms": null}}')
    assert project_settings._limit_overrides("CB_LIMIT_OVERRIDES") == {
        "task.create": {"rate": 5, "per_ms": 1000, "timeout_ms": None}}
