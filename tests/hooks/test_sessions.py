"""The session state processor and session.* handlers (SPEC §10.9, §5.3.5)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from claudebench.core import keys
from hooks import sessions
from hooks.models import HookAudit, SessionEvent, SessionSnapshot, SessionState

pytestmark = pytest.mark.django_db(transaction=True)

SID = "sess-proc-1"


async def drain(redis, *types: str) -> int:
    """Feed every published hook.*.executed envelope to the processor, as the listener would."""
    done = 0
    for t in types:
        for _, fields in await redis.xrange(keys.stream(t)):
            env = orjson.loads(fields["data"])
            if (env.get("metadata") or {}).get("kind") == "request":
                continue
            done += await sessions.record_hook_event(t, env)
    return done


async def test_hook_events_fill_the_session_once(call, redis):
    await call("hook.user_prompt", {"prompt": "build it", "context": {}, "sessionId": SID, "instanceId": "i-1"})
    await call("hook.pre_tool", {"tool": "Bash", "params": {"command": "rm -rf /"}, "sessionId": SID,
                                 "instanceId": "i-1"})
    await call("hook.todo_write", {"todos": [{"content": "t1", "status": "pending"}], "sessionId": SID,
                                   "instanceId": "i-1"})
    types = ("hook.user_prompt.executed", "hook.pre_tool.executed", "hook.todo_write.executed")
    recorded = await drain(redis, *types)
    assert recorded == 3, recorded
    assert await drain(redis, *types) == 0  # a second process gets nothing to do
    state = await redis.hgetall(keys.session_state(SID))
    assert state["eventCount"] == "3" and state["instanceId"] == "i-1"
    assert await redis.lrange(keys.session_tools(SID), 0, -1) == ["Bash"]
    ctx = await redis.hgetall(keys.session_context(SID))
    assert ctx["lastPrompt"] == "build it"
    assert orjson.loads(ctx["activeTodos"]) == [{"content": "t1", "status": "pending"}]
    assert await SessionEvent.objects.filter(session_id=SID).acount() == 3
    row = await SessionState.objects.aget(id=SID)
    assert row.event_count == 3 and row.recent_tools == ["Bash"]
    blocked = await HookAudit.objects.aget(hook_type="pre_tool")
    assert blocked.allowed is False and blocked.reason == "dangerous command pattern detected: rm -rf"
    assert await HookAudit.objects.filter(allowed=True).acount() == 2


async def test_state_get_snapshot_and_rehydrate(call, redis, stream_events):
    await call("hook.user_prompt", {"prompt": "hello", "context": {}, "sessionId": SID, "instanceId": "i-1"})
    await call("hook.pre_tool", {"tool": "Read", "params": {"file_path": "a.py"}, "sessionId": SID,
                                 "instanceId": "i-1"})
    await drain(redis, "hook.user_prompt.executed", "hook.pre_tool.executed")
    out = await call("session.state.get", {"sessionId": SID})
    assert [e["eventType"] for e in out["events"]] == ["hook.user_prompt", "hook.pre_tool"]
    assert out["summary"]["totalEvents"] == 2
    condensed = await call("session.state.get", {"sessionId": SID, "condensed": True})
    assert condensed["events"] == [] and condensed["condensed"]["tools"][0]["name"] == "Read"
    snap = await call("session.snapshot.create", {"sessionId": SID, "instanceId": "i-1", "reason": "manual"})
    assert snap["eventCount"] == 2 and snap["snapshotId"].startswith(f"snap-{SID}-")
    assert await SessionSnapshot.objects.filter(snapshot_id=snap["snapshotId"]).aexists()
    [created] = await stream_events("session.snapshot.created")
    assert created["payload"]["snapshotId"] == snap["snapshotId"]
    back = await call("session.rehydrate", {"sessionId": SID, "instanceId": "i-2"})
    assert back["rehydrated"] is True and back["snapshot"]["id"] == snap["snapshotId"]
    assert back["context"]["lastPrompt"] == "hello" and back["context"]["lastTools"] == ["Read"]
    assert back["context"]["lastTasks"] == [] and back["context"]["activeTodos"] == []


async def test_empty_session_reads_as_empty_lists(call, redis):
    out = await call("session.rehydrate", {"sessionId": "nobody", "instanceId": "i-1"})
    assert out["context"] == {"lastTasks": [], "lastTools": [], "activeTodos": []}
    from claudebench.core.errors import HandlerError

    with pytest.raises(HandlerError):
        await call("session.snapshot.create", {"sessionId": "nobody", "instanceId": "i", "reason": "manual"})


async def test_listener_records_published_events(call, redis):
    stop = asyncio.Event()
    listener = asyncio.create_task(sessions.listen(stop))
    try:
        await asyncio.sleep(0.2)  # let PSUBSCRIBE land
        await call("hook.pre_tool", {"tool": "Bash", "params": {"command": "ls"}, "sessionId": "live-1"})
        deadline = asyncio.get_running_loop().time() + 5
        while not await redis.exists(keys.session_state("live-1")):
            assert asyncio.get_running_loop().time() < deadline, "processor never recorded the event"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await listener


async def test_durable_subscription_records_each_event_once(call, redis, settings):
    settings.CB_BUS_BLOCK_MS = 50
    from events import subscriptions
    from events.consumer import GroupConsumer

    sub = subscriptions.get("hooks-session-state")
    assert sub is not None
    await call("hook.pre_tool", {"tool": "Bash", "params": {"command": "ls"}, "sessionId": "durable-1"})
    await call("hook.user_prompt", {"prompt": "hi", "context": {}, "sessionId": "durable-1"})
    consumers = [GroupConsumer(sub, f"c{i}", asyncio.Event()) for i in range(2)]
    for consumer in consumers:
        await consumer.discover()
    for _ in range(3):  # the first round of a consumer re-reads its own pending entries
        for consumer in consumers:
            await consumer.round()
    assert await redis.hget(keys.session_state("durable-1"), "eventCount") == "2"
    assert await SessionEvent.objects.filter(session_id="durable-1").acount() == 2


async def test_hook_events_keep_a_registered_instance_alive(call, redis):
    await call("system.register", {"id": "claude-code-alive", "roles": ["claude-code"]})
    before = await redis.hget(keys.instance("claude-code-alive"), "lastSeen")
    await asyncio.sleep(0.01)
    await call("hook.pre_tool", {"tool": "Bash", "params": {"command": "ls"}, "sessionId": "alive",
                                 "instanceId": "claude-code-alive"})
    await drain(redis, "hook.pre_tool.executed")
    assert await redis.hget(keys.instance("claude-code-alive"), "lastSeen") != before
    assert await redis.exists(keys.hook_heartbeat("claude-code-alive"))
