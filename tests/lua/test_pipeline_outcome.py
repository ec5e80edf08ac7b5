"""pipeline_outcome.lua folds a run of calls of one handler into one script: what it leaves in
Redis must be what the same calls leave one script run each (breaker walk, counters, running
mean, audit and hook entries in order, cache writes)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from claudebench.core import keys, scripts

EVENT = "test.outcome"
HOOK = "hook.pre_tool"


def outcome(event: str = EVENT, *, ok: bool = True, failure_type: str = "", ms: float = 1.0, n: int = 0,
            digest: str | None = None, hook: tuple[str, str, str] | None = None, **shared: Any) -> dict[str, Any]:
    o = dict(
        event=event, ok=ok, failure_type=failure_type, duration_ms=ms, breaker=True, threshold=3, open_ms=30_000,
        max_open_ms=300_000, close_after=3, actor=f"actor-{n}", now_iso=f"2026-12-04T00:00:{n % 60:02d}.000Z",
        reason="" if ok else f"boom {n}", audit_metadata=f'{{"eventId":"evt-{n}"}}', audit_maxlen=10_000,
        audit_ttl_s=86_400, cache_digest=digest, cache_ttl_s=30 if digest else 0,
        cache_entry=f"1|{{\"n\":{n}}}" if digest else "", hook_decision=hook,
        domain=event.split(".")[0], domain_metrics="hook" if event.startswith("hook.") else "task",
        timeout_on=True,
    )
    o.update(shared)
    return o


def calls() -> list[dict[str, Any]]:
    """Successes, a failure streak that opens the breaker (error, timeout, error), calls while it
    is open, then other handlers' calls in between (hook decisions, a cached answer)."""
    seq = [outcome(n=0, ms=1.5), outcome(n=1, ms=2.25), outcome(n=2, ok=False, failure_type="error", ms=3.0),
           outcome(n=3, ok=False, failure_type="timeout", ms=3000.0), outcome(n=4, ok=False, failure_type="error"),
           outcome(n=5, ms=0.75), outcome(n=6, ok=False, failure_type="", ms=0.5)]
    seq += [outcome(HOOK, n=7, hook=("allowed", "", '{"command":"ls"}')),
            outcome(HOOK, n=8, hook=("blocked", "Dangerous", '{"command":"rm -rf /"}')),
            outcome("system.health", n=9, digest="abc123", domain_metrics="health", breaker=False),
            outcome(n=10, ms=4.0)]
    return seq


# Values that hold the Redis clock (TIME) differ between two runs; everything else must not.
_CLOCK_KEYS = ("lastFailure", "openedAt")
_CLOCK_FIELDS = ("lastRecoveryTime", "avgRecoveryTime", "lastCheck")


async def snapshot(redis) -> dict[str, Any]:
    state: dict[str, Any] = {}
    async for key in redis.scan_iter(match="cb:*"):
        if key.endswith(_CLOCK_KEYS):
            state[key] = "<clock>"
            continue
        kind = await redis.type(key)
        if kind == "hash":
            state[key] = {f: v for f, v in (await redis.hgetall(key)).items() if f not in _CLOCK_FIELDS}
        elif kind == "string":
            state[key] = await redis.get(key)
        elif kind == "stream":
            state[key] = [fields for _, fields in await redis.xrange(key)]
        elif kind == "list":
            state[key] = await redis.lrange(key, 0, -1)
        state[f"{key}#expires"] = await redis.ttl(key) > 0
    return state


async def test_a_run_of_calls_leaves_what_one_script_per_call_leaves(redis):
    one_by_one = [await scripts.pipeline_outcome(redis, **o) for o in calls()]
    expected = await snapshot(redis)
    await redis.flushdb()

    together = await scripts.pipeline_outcome_batch(redis, calls())
    assert together == one_by_one
    assert together[4] == "opened" and together.count("opened") == 1  # the third failure in a row
    assert await snapshot(redis) == expected


async def test_calls_of_one_handler_share_a_script_run_and_order_is_kept(redis):
    batch = calls()
    runs = scripts._outcome_runs(batch)
    assert [len(r) for r in runs] == [7, 2, 1, 1]  # consecutive calls of one handler, in order
    assert [o for r in runs for o in r] == batch
    many = [outcome(n=i) for i in range(scripts.OUTCOME_RUN_MAX + 5)]
    assert [len(r) for r in scripts._outcome_runs(many)] == [scripts.OUTCOME_RUN_MAX, 5]
    await scripts.pipeline_outcome_batch(redis, many)
    entries = await redis.xrange(keys.AUDIT_GENERAL)
    assert [f["actor"] for _, f in entries] == [f"actor-{i}" for i in range(len(many))]  # one each, in order
    measured = await redis.hgetall(keys.metrics_events(EVENT))
    assert measured["count"] == str(len(many)) and measured["success"] == str(len(many))
    assert await redis.hget(keys.METRICS_COUNTERS, f"circuit:{EVENT}:success") == str(len(many))


_RECOVERY = [outcome(n=0), outcome(n=1), outcome(n=2), outcome(n=3),  # the third success closes it
             outcome(n=4, ok=False, failure_type="error"), outcome(n=5)]  # a success ends that streak
_RETRIP = [*_RECOVERY, *(outcome(n=i, ok=False, failure_type="error") for i in range(6, 9)),  # opened
           outcome(n=9)]  # while open: counted as a success, no recovery


@pytest.mark.parametrize("seq", [_RECOVERY, _RETRIP], ids=["recovery", "recovery-then-trip"])
async def test_a_half_open_breaker_closes_and_trips_again_within_one_run_as_call_by_call(redis, seq):
    """The run keeps what it knows of the breaker's keys between calls (it resets the failure
    streak and reads the trip record once for a stretch of successes): recovery, a new streak and
    a new trip inside one run must still leave what one script per call leaves."""

    async def half_open() -> None:  # a trip on record, its open window over
        await redis.set(keys.circuit(EVENT, "trips"), "1", ex=3600)
        await redis.set(keys.circuit(EVENT, "lastFailure"), "1", ex=3600)

    await half_open()
    one_by_one = [await scripts.pipeline_outcome(redis, **o) for o in seq]
    expected = await snapshot(redis)
    await redis.flushdb()
    await half_open()
    together = await scripts.pipeline_outcome_batch(redis, seq)
    assert together == one_by_one
    assert together[2] == "closed" and together.count("opened") == (seq is _RETRIP)
    assert _no_clock(await snapshot(redis)) == _no_clock(expected)


def _no_clock(state: dict[str, Any]) -> dict[str, Any]:
    """The recovery entry's reason holds a time measured on the Redis clock: blank its figure."""
    entries = state.get(keys.AUDIT_GENERAL, [])
    state[keys.AUDIT_GENERAL] = [{**e, "reason": re.sub(r"\d+ms", "<ms>", e["reason"])} for e in entries]
    return state
