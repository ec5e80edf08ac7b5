"""hook.pre_tool decides before its admission and sends the validator's records and its event in
the admission's round trip, gated on the admission letting the call through (lua/gated_writes.lua,
the gate of lua/exactly_once_delivery.lua, core/pipeline.Prepared). A refused call writes nothing
of its own; an admitted one writes everything exactly once, also when Redis lost its scripts."""

from __future__ import annotations

import pytest

from claudebench.core import keys, scripts

pytestmark = pytest.mark.django_db(transaction=True)

LS = {"tool": "Bash", "params": {"command": "ls -la"}, "sessionId": "s-gated"}


@pytest.fixture
def limits(settings):
    settings.CB_LIMIT_OVERRIDES = {}

    def _set(event: str, **fields) -> None:
        settings.CB_LIMIT_OVERRIDES = {**settings.CB_LIMIT_OVERRIDES, event: fields}

    return _set


async def decisions(redis) -> list[dict]:
    return [f for _, f in await redis.xrange(keys.AUDIT_HOOK_DECISIONS) if f.get("source")]


async def no_gates_left(redis) -> bool:
    return not [k async for k in redis.scan_iter(match="cb:gate:*")]


async def test_an_admitted_call_writes_records_and_event_once_and_leaves_no_gate(call, redis, stream_events):
    assert await call("hook.pre_tool", LS) == {"allow": True}
    assert len(await stream_events("hook.pre_tool.executed")) == 1
    assert len(await decisions(redis)) == 1
    assert await redis.get(keys.validation("bash", "ls")) == "true"
    assert await no_gates_left(redis)


async def test_a_rate_limited_call_writes_nothing_of_its_own(call, redis, stream_events, limits):
    from claudebench.core.errors import RateLimited

    limits("hook.pre_tool", rate=1)
    await call("hook.pre_tool", LS)
    with pytest.raises(RateLimited):
        await call("hook.pre_tool", {**LS, "params": {"command": "rm -rf /"}})
    assert len(await stream_events("hook.pre_tool.executed")) == 1  # only the first call's event
    assert [d["decision"] for d in await decisions(redis)] == ["allow"]
    assert await redis.get(keys.rejection_reason("bash", "rm-rf")) is None
    assert await no_gates_left(redis)


async def test_an_open_breaker_answers_the_fallback_and_writes_nothing(call, redis, stream_events):
    await redis.set(keys.circuit("hook.pre_tool", "state"), "OPEN", px=60_000)
    out = await call("hook.pre_tool", {**LS, "params": {"command": "rm -rf /"}})
    assert out["allow"] is True and "circuit breaker open" in out["reason"]
    assert await stream_events("hook.pre_tool.executed") == []
    assert await decisions(redis) == []
    assert await no_gates_left(redis)


async def test_after_a_script_flush_the_writes_still_happen_exactly_once(call, redis, stream_events):
    await redis.script_flush()  # the admission and both gated scripts answer NOSCRIPT first
    out = await call("hook.pre_tool", {**LS, "params": {"command": "sudo apt install jq"}})
    assert out == {"allow": True, "modified": {"command": "apt install jq"}}
    assert len(await stream_events("hook.pre_tool.executed")) == 1
    assert len(await decisions(redis)) == 1
    assert await no_gates_left(redis)


async def test_when_deciding_early_fails_the_call_takes_the_ordinary_path(call, redis, stream_events, monkeypatch):
    from hooks import validator

    real, failed = validator.decide, []

    async def flaky(*args, **kwargs):
        if not failed:
            failed.append(True)
            raise RuntimeError("rules unavailable for a moment")
        return await real(*args, **kwargs)

    monkeypatch.setattr(validator, "decide", flaky)
    assert await call("hook.pre_tool", LS) == {"allow": True}
    assert failed and len(await stream_events("hook.pre_tool.executed")) == 1
    assert len(await decisions(redis)) == 1
    assert await no_gates_left(redis)  # the admission had been sent asking for one


async def test_a_call_leaves_no_reference_cycle_behind(call):
    """Prepared's closures hold the call's Ctx, and the Ctx held the Prepared: every call left a
    cycle of ~24 objects, so the collector ran every ~30 calls (each run a stall of B2's tail)."""
    import gc

    from claudebench.core.pipeline import Ctx, Prepared

    await call("hook.pre_tool", LS)  # first-call caches out of the way
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for n in range(3):
            assert await call("hook.pre_tool", {**LS, "sessionId": f"s-cycle-{n}"}) == {"allow": True}
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, Ctx | Prepared)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


async def test_gated_writes_do_nothing_without_their_gate_and_once_with_it(redis):
    commands = [("SET", "cb:test:gated:a", "1", "EX", 60), ("HINCRBY", "cb:test:gated:h", "n", 2),
                ("EXPIRE", "cb:test:gated:h", 60)]
    assert await scripts.gated_writes(redis, keys.gate("evt-none"), commands) is False
    assert await redis.exists("cb:test:gated:a", "cb:test:gated:h") == 0
    await redis.set(keys.gate("evt-1"), "1", px=10_000)
    assert await scripts.gated_writes(redis, keys.gate("evt-1"), commands) is True
    assert await redis.get("cb:test:gated:a") == "1" and await redis.hget("cb:test:gated:h", "n") == "2"
    assert await scripts.gated_writes(redis, keys.gate("evt-1"), commands) is False  # the gate is used up
    assert await redis.hget("cb:test:gated:h", "n") == "2"


async def test_gated_writes_refuse_commands_outside_their_list(redis):
    from redis.exceptions import ResponseError

    await redis.set(keys.gate("evt-2"), "1", px=10_000)
    with pytest.raises(ResponseError, match="not allowed"):
        await scripts.gated_writes(redis, keys.gate("evt-2"), [("DEL", "cb:test:gated:a")])


async def test_a_gated_publish_without_its_gate_is_not_delivered(redis):
    call_keys, args = scripts.exactly_once_delivery_call(
        event_id="evt-gated-1", event_type="test.gated", envelope="{}", maxlen=100, stream_ttl_s=60,
        marker_ttl_s=60, gate=keys.gate("evt-missing"))
    assert await scripts.evalsha(redis, "exactly_once_delivery", call_keys, args) == [2, ""]
    assert await redis.exists(keys.stream("test.gated"), keys.processed_event("evt-gated-1")) == 0
