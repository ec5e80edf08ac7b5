"""post_tool, user_prompt, agent_stop, notification, pre_compact, config.* (SPEC §5.3.2, §5.3.7)."""

from __future__ import annotations

import pytest

from claudebench.core import keys
from claudebench.core.errors import InvalidParams

pytestmark = pytest.mark.django_db(transaction=True)


async def test_post_tool_logs_and_raises_an_alert_after_five_errors(call, redis, stream_events):
    for _ in range(6):
        out = await call("hook.post_tool", {"tool": "Bash", "params": {}, "result": {"error": "boom"}})
    assert out == {"processed": True}
    assert await redis.hget(keys.metrics_tool("Bash"), "errors") == "6"
    [alert] = await stream_events("alert.tool_errors")
    assert alert["payload"]["errorCount"] == 6
    assert len(await stream_events("hook.post_tool.executed")) == 6


async def test_post_tool_special_cases(call, redis):
    out = await call("hook.post_tool", {"tool": "file.write", "result": {"path": "/tmp/x"}})
    assert out == {"processed": {"acknowledged": True, "path": "/tmp/x"}}
    assert await redis.sismember(keys.CREATED_FILES, "/tmp/x")


async def test_user_prompt_warns_about_secrets_and_leaves_clean_prompts_alone(call, redis, stream_events):
    assert await call("hook.user_prompt", {"prompt": "list files", "context": {}}) == {}
    out = await call("hook.user_prompt", {"prompt": "here is my password", "context": {}})
    assert out == {"modified": "here is my password\n\n⚠️ Sensitive information mentioned"}
    events = await stream_events("hook.user_prompt.executed")
    assert [e["payload"]["modified"] for e in events] == [False, True]
    assert "modifiedPrompt" not in events[0]["payload"]
    assert events[1]["payload"]["prompt"] == "here is my password"


async def test_agent_stop_notification_and_pre_compact(call, redis, stream_events):
    out = await call("hook.agent_stop", {"instanceId": "i-1", "sessionId": "s-1", "agentType": "main",
                                         "timestamp": 1})
    assert out == {"acknowledged": True, "cleanedUp": False}  # no such instance hash
    out = await call("hook.notification", {"message": "hi", "type": "error", "sessionId": "s-1",
                                            "instanceId": "i-1", "timestamp": 2})
    assert out == {"received": True, "broadcasted": True}
    assert await redis.get(keys.errors("i-1")) == "1"
    out = await call("hook.pre_compact", {"sessionId": "s-1", "instanceId": "i-1", "contextSize": 1000,
                                          "timestamp": 3})
    assert out == {"acknowledged": True, "stateSaved": True}
    notes = await redis.hgetall(keys.compact_snapshot("s-1", 3, "notifications"))
    assert notes["count"] == "1"
    [event] = await stream_events("context.pre_compact")
    assert event["payload"]["compactionCount"] == 1
    # Kinds newer than the original's enums (sent as-is by the original bridge) read as the default.
    out = await call("hook.agent_stop", {"instanceId": "i-1", "sessionId": "s-1", "agentType": "general-purpose",
                                         "timestamp": 1})
    assert out["acknowledged"] is True
    assert (await stream_events("agent.stopped"))[-1]["payload"]["agentType"] == "unknown"
    await call("hook.notification", {"message": "approve?", "type": "permission_prompt", "sessionId": "s-1",
                                     "instanceId": "i-1", "timestamp": 4})
    assert await redis.hget(keys.notification_latest("i-1"), "type") == "info"
    with pytest.raises(InvalidParams):
        await call("hook.agent_stop", {"instanceId": "i-1", "sessionId": "s-1", "agentType": 7, "timestamp": 1})


async def test_config_set_and_get_and_cache_invalidation(call, redis, stream_events):
    assert await call("config.get", {"key": "todowrite.autocreate"}) == {
        "key": "todowrite.autocreate", "value": None, "exists": False}
    out = await call("config.set", {"key": "todowrite.autocreate", "value": False})
    assert out == {"key": "todowrite.autocreate", "value": False, "success": True}
    assert await redis.get(keys.config("todowrite.autocreate")) == "false"
    assert await call("config.get", {"key": "todowrite.autocreate"}) == {
        "key": "todowrite.autocreate", "value": False, "exists": True}
    await call("config.set", {"key": "obj", "value": {"a": [1, 2]}})
    assert (await call("config.get", {"key": "obj"}))["value"] == {"a": [1, 2]}
    [first, _] = await stream_events("config.changed")
    assert first["payload"] == {"key": "todowrite.autocreate", "value": False}
    with pytest.raises(InvalidParams):
        await call("config.set", {"key": ""})
