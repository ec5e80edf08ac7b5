"""Circuit-breaker layer (SPEC §3.10 recommended machine, §16 rows 14–15): state in Redis, changed
atomically by the pipeline scripts, the same for every process."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from claudebench.core import keys
from claudebench.core.errors import CbError, CircuitOpen, HandlerError
from claudebench.core.registry import Limits
from claudebench.core.schema import Empty, Out
from claudebench.transport import introspection
from tests.core.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FALLBACK = {"success": False, "message": "Circuit breaker open - fallback response"}
OK = {"success": True, "message": "Test handler executed successfully"}


async def _fail(call, n: int = 1, **params) -> None:
    for _ in range(n):
        with pytest.raises(CbError):
            await call("test.circuit", {"shouldFail": True, **params})


async def _state(redis, event: str = "test.circuit") -> str:
    doc = await introspection.handlers_with_state(redis)
    return next(h["circuitState"] for h in doc["handlers"] if h["event"] == event)


async def test_walks_every_transition(circuit_on, limits, call, redis, settle):
    limits("test.circuit", trip_after=3, open_ms=1_000)
    state_key = keys.circuit("test.circuit", "state")
    await _fail(call, 2)
    await call("test.circuit", {})                            # a success resets the consecutive count
    await _fail(call, 2)
    await settle()
    assert await _state(redis) == "CLOSED"
    await _fail(call, 1)                                      # third consecutive failure: trip
    await settle()
    assert await _state(redis) == "OPEN"
    assert await redis.get(state_key) == "OPEN"
    assert 0 < await redis.pttl(state_key) <= 1_000           # SPEC §3.10: OPEN carries its window as PX
    assert await redis.exists(keys.circuit("test.circuit", "openedAt"))
    assert await call("test.circuit", {}) == FALLBACK         # read-only: the declared fallback
    assert await redis.get(keys.circuit("test.circuit", "rejected")) == "1"

    async def half_open() -> bool:
        return await _state(redis) == "HALF_OPEN"

    await wait_for(half_open, timeout_s=3)                    # open window over → HALF_OPEN
    for _ in range(2):
        assert await call("test.circuit", {}) == OK
        await settle()
        assert await _state(redis) == "HALF_OPEN"             # closes after 3 successful trials
    assert await call("test.circuit", {}) == OK
    await settle()
    assert await _state(redis) == "CLOSED"
    assert not await redis.exists(keys.circuit("test.circuit", "trips"))

    await _fail(call, 3)                                      # trip again
    await settle()
    assert await _state(redis) == "OPEN"
    await wait_for(half_open, timeout_s=3)
    await _fail(call, 1)                                      # a failed trial re-opens, window ×1.5
    await settle()
    assert await _state(redis) == "OPEN"
    assert 0 < await redis.pttl(state_key) <= 1_500
    latest = orjson.loads(await redis.lindex(keys.ALERTS_CIRCUIT_OPENED, 0))
    assert (latest["handler"], latest["openMs"]) == ("test.circuit", 1_500)  # second trip: window ×1.5
    assert await redis.get(keys.circuit("test.circuit", "trips")) == "2"
    counters = await redis.hgetall(keys.METRICS_COUNTERS)
    assert counters["circuit:test.circuit:opened"] == "3"
    assert counters["circuit:test.circuit:closed"] == "1"
    actions = [f["action"] for _, f in await redis.xrange(keys.AUDIT_GENERAL)]
    for action in ("circuit.opened", "circuit.open", "circuit.half-open", "circuit.closed"):
        assert action in actions


async def test_half_open_admits_a_bounded_number_of_trials(circuit_on, limits, call, redis, settle, settings):
    settings.CB_CIRCUIT_HALF_OPEN_TRIALS = 2
    limits("test.circuit", trip_after=1, open_ms=100)
    await _fail(call)
    await settle()
    await wait_for(lambda: _is(redis, "HALF_OPEN"), timeout_s=3)
    answers = await asyncio.gather(*(call("test.circuit", {"delay": 150}) for _ in range(5)))
    assert sorted(a["success"] for a in answers) == [False, False, False, True, True]
    assert await redis.get(keys.circuit("test.circuit", "rejected")) == "3"


async def _is(redis, state: str) -> bool:
    return await _state(redis) == state


class _Written(Out):
    id: str


async def test_open_mutating_handler_raises_and_never_fabricates(temp_handler, limits, call, rpc, redis, settle):
    ran = {"n": 0}

    async def flaky_write(ctx, data):
        ran["n"] += 1
        raise RuntimeError("disk on fire")

    temp_handler("test.flaky_write", flaky_write, input=Empty, output=_Written,
                 limits=Limits(trip_after=2, open_ms=60_000), fallback=lambda data: {"id": "t-fallback"})
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await call("test.flaky_write", {})
    await settle()
    with pytest.raises(CircuitOpen):
        await call("test.flaky_write", {})
    answer = await rpc("test.flaky_write", {})
    assert answer["error"] == {"code": -32001, "message": "Circuit breaker is open"}
    assert ran["n"] == 2                                      # the body never ran while open


async def test_domain_refusals_do_not_trip_the_breaker(temp_handler, call, redis, settle):
    async def picky(ctx, data):
        raise HandlerError("Task not found: t-0")

    temp_handler("test.picky", picky, input=Empty, output=_Written, limits=Limits(trip_after=2, open_ms=60_000))
    for _ in range(5):
        with pytest.raises(HandlerError):
            await call("test.picky", {})
    await settle()
    assert await _state(redis, "test.picky") == "CLOSED"


async def test_timeouts_count_as_failures(circuit_on, limits, call, redis, settle):
    limits("test.circuit", trip_after=2, open_ms=60_000, timeout_ms=50)
    for _ in range(2):
        with pytest.raises(CbError) as err:
            await call("test.circuit", {"delay": 500})
        assert err.value.detail == "Operation timed out after 50ms"
    await settle()
    assert await _state(redis) == "OPEN"
    assert await redis.get(keys.circuit("test.circuit", "failures:timeout")) == "2"
    assert (await redis.hgetall(keys.METRICS_COUNTERS))["timeout:test.circuit:exceeded"] == "2"


async def test_failure_message_travels_in_data(circuit_on, rpc):
    answer = await rpc("test.circuit", {"shouldFail": True, "failureMessage": "boom"})
    assert answer["error"] == {"code": -32603, "message": "Internal error", "data": "boom"}
