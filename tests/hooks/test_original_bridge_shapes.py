"""The original ClaudeBench hook bridge, unchanged, against our /rpc: the methods and params it
sends (SPEC §2.8 table) and the answers it acts on."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BASE = {"sessionId": "claude-session-123", "instanceId": "claude-code-claude-s", "timestamp": 1694462400000}


async def test_pre_tool_block_and_modify_answers(rpc):
    blocked = await rpc("hook.pre_tool", {"tool": "Bash", "params": {"command": "rm -rf /"}, **BASE,
                                          "metadata": {"projectDir": "/p", "eventType": "PreToolUse"}})
    assert blocked["result"]["allow"] is False and blocked["result"]["reason"]  # → exit 2
    modified = await rpc("hook.pre_tool", {"tool": "Bash", "params": {"command": "sudo ls /root"}, **BASE})
    assert modified["result"] == {"allow": True, "modified": {"command": "ls /root"}}  # → prints modified


async def test_other_hooks_answer_what_the_bridge_prints(rpc):
    todo = await rpc("hook.todo_write", {"todos": [{"content": "x", "status": "pending", "activeForm": "X-ing",
                                                    "id": "1"}], **BASE,
                                         "previousTodos": [{"content": "x", "status": "pending"}]})
    assert todo["result"]["processed"] is True and "summary" in todo["result"]
    post = await rpc("hook.post_tool", {"tool": "Read", "params": {"file_path": "a"}, "result": "text", **BASE,
                                        "executionTime": 0, "success": True})
    assert post["result"] == {"processed": True}
    prompt = await rpc("hook.user_prompt", {"prompt": "hello", "context": {"projectPath": "/p",
                                                                           "conversationId": "c",
                                                                           "messageCount": 0}, **BASE})
    assert prompt["result"] == {}  # no `continue: false`: prompts are never blocked
    stop = await rpc("hook.agent_stop", {"instanceId": BASE["instanceId"], "sessionId": BASE["sessionId"],
                                         "agentType": "main", "timestamp": 1})
    assert stop["result"]["acknowledged"] is True
    sub = await rpc("hook.agent_stop", {"instanceId": BASE["instanceId"], "sessionId": BASE["sessionId"],
                                        "agentType": "general-purpose", "timestamp": 1})
    assert "result" in sub
    note = await rpc("hook.notification", {"message": "m", "type": "idle_prompt", **BASE})
    assert note["result"] == {"received": True, "broadcasted": True}
    compact = await rpc("hook.pre_compact", {"contextSize": 0, **BASE})
    assert compact["result"]["acknowledged"] is True
    unknown = await rpc("hook.session_something", {"data": {}, **BASE})
    assert unknown["error"]["code"] == -32601  # non-blocking for the bridge (exit 1)
