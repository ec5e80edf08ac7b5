"""POST /hooks/claude: Claude Code's HTTP hooks answered in the shape Claude Code reads."""

from __future__ import annotations

import pytest

from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

BASE = {"session_id": "abc12345-http", "cwd": "/home/dev/project", "transcript_path": "/tmp/t.jsonl",
        "permission_mode": "default"}


def pre(command):
    return {**BASE, "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_1",
            "tool_input": {"command": command, "description": "x"}}


async def test_a_blocked_tool_is_denied_with_the_reason(client):
    r = await client.post("/hooks/claude", json=pre("rm -rf /"))
    assert r.status_code == 200
    assert r.json() == {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                               "permissionDecisionReason": "dangerous command pattern detected: rm -rf"}}


async def test_an_allowed_tool_gets_an_empty_answer(client):
    r = await client.post("/hooks/claude", json=pre("ls -la"))
    assert r.status_code == 200 and r.json() == {}


async def test_a_rewritten_tool_is_shown_to_the_user_with_the_new_input(client):
    body = (await client.post("/hooks/claude", json=pre("sudo apt install jq"))).json()["hookSpecificOutput"]
    assert body["permissionDecision"] == "ask"
    assert body["updatedInput"] == {"command": "apt install jq", "description": "x"}


async def test_prompt_warnings_come_back_as_additional_context(client):
    r = await client.post("/hooks/claude", json={**BASE, "hook_event_name": "UserPromptSubmit",
                                                 "prompt": "use my api key"})
    out = r.json()["hookSpecificOutput"]
    assert out["hookEventName"] == "UserPromptSubmit" and "Sensitive information" in out["additionalContext"]


async def test_todowrite_over_http_creates_tasks(client):
    payload = {**BASE, "hook_event_name": "PostToolUse", "tool_name": "TodoWrite",
               "tool_input": {"todos": [{"content": "Do it", "status": "pending", "activeForm": "Doing it"}]},
               "tool_response": {"oldTodos": [], "newTodos": []}}
    assert (await client.post("/hooks/claude", json=payload)).json() == {}
    assert await Task.objects.filter(text="Do it").acount() == 1


async def test_sub_agents_get_their_own_instance(client, redis):
    payload = {**pre("ls"), "agent_id": "agent-9f8e7d6c5b", "agent_type": "Explore"}
    assert (await client.post("/hooks/claude", json=payload)).json() == {}
    from claudebench.core import keys

    decisions = [f for _, f in await redis.xrange(keys.AUDIT_HOOK_DECISIONS) if f.get("source")]
    assert [d["instanceId"] for d in decisions] == ["claude-code-abc12345-agent-9f"]


async def test_bad_bodies_and_methods(client):
    assert (await client.post("/hooks/claude", content=b"{nope")).status_code == 400
    assert (await client.post("/hooks/claude", content=b"[1]")).status_code == 400
    assert (await client.get("/hooks/claude")).status_code == 405
    assert (await client.options("/hooks/claude")).status_code == 204
    unknown = await client.post("/hooks/claude", json={**BASE, "hook_event_name": "SomethingNew"})
    assert unknown.status_code == 200 and unknown.json() == {}
