"""Audit layer (SPEC §3.6): entries on the `cb:audit:*` streams, the contract with the audit drain."""

from __future__ import annotations

import orjson
import pytest

from claudebench.core import keys
from claudebench.core.errors import CbError, RateLimited
from claudebench.core.schema import Empty, Out

pytestmark = pytest.mark.django_db(transaction=True)


async def _audit(redis, key=keys.AUDIT_GENERAL) -> list[dict]:
    return [fields for _, fields in await redis.xrange(key)]


async def test_every_call_is_audited_with_actor_and_correlation(circuit_on, limits, call, redis, settle, settings):
    limits("test.circuit", rate=2)
    await call("test.circuit", {}, client_id="agent-1", correlation_id="corr-9")
    with pytest.raises(CbError):
        await call("test.circuit", {"shouldFail": True, "failureMessage": "boom"}, client_id="agent-1")
    with pytest.raises(RateLimited):
        await call("test.circuit", {}, client_id="agent-1")
    await settle()
    # Rejections are written at admission, results after the call: sort by what happened.
    entries = sorted(await _audit(redis), key=lambda e: (e["action"], e["result"]))
    assert [(e["action"], e["result"]) for e in entries] == [
        ("ratelimit.exceeded", "blocked"), ("test.circuit", "failure"), ("test.circuit", "success")]
    assert {e["actor"] for e in entries} == {"agent-1"}
    assert entries[0]["reason"] == "Rate limit exceeded: 2/2 in 60000ms"
    assert entries[1]["reason"] == "boom"
    meta = orjson.loads(entries[2]["metadata"])
    assert meta["correlationId"] == "corr-9"
    assert meta["instanceId"] == settings.INSTANCE_ID
    assert meta["eventId"].startswith("evt-")
    assert all(e["resource"] == "test.circuit" and e["timestamp"].endswith("Z") for e in entries)
    assert await redis.ttl(keys.AUDIT_GENERAL) > 0


class _Decision(Out):
    allow: bool | None = None
    reason: str | None = None


async def test_hook_calls_record_their_decision(temp_handler, call, redis, settle):
    answers = iter([{"allow": False, "reason": "rm -rf"}, {}])

    async def probe(ctx, data):
        return next(answers)

    temp_handler("hook.test_probe", probe, input=Empty, output=_Decision)
    await call("hook.test_probe", {})
    await call("hook.test_probe", {})                        # no `allow` at all: allowed (SPEC §3.6 fix)
    await settle()
    decisions = await _audit(redis, keys.AUDIT_HOOK_DECISIONS)
    assert [(d["tool"], d["decision"], d["reason"]) for d in decisions] == [
        ("test_probe", "blocked", "rm -rf"), ("test_probe", "allowed", "")]
    assert orjson.loads(decisions[0]["params"]) == {}
    per_tool = await _audit(redis, keys.audit_tool_stream("test_probe"))
    assert [d["decision"] for d in per_tool] == ["blocked", "allowed"]
