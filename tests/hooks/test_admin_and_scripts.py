"""The admin pages for rules and the hook audit, and the session/todo Lua scripts' key contracts."""

from __future__ import annotations

import orjson
import pytest
from asgiref.sync import sync_to_async

from claudebench.core import keys, scripts
from hooks.models import HookAudit, HookRule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("page", ["hookrule", "hookaudit", "sessionstate", "sessionsnapshot"])
def test_admin_lists_render(admin_client, page):
    HookRule.objects.create(group="g", pattern="x", action="block", message="m")
    HookAudit.objects.create(id="hse-1", hook_type="pre_tool", allowed=False, reason="no")
    assert admin_client.get(f"/admin/hooks/{page}/").status_code == 200


def test_admin_refuses_a_broken_regex(admin_client):
    response = admin_client.post("/admin/hooks/hookrule/add/", {
        "group": "g", "tools": "Bash", "severity": "high", "action": "block", "pattern": "(unclosed",
        "message": "m", "case_insensitive": "on", "enabled": "on", "position": "0"})
    assert response.status_code == 200 and b"Not a valid regular expression" in response.content
    assert not HookRule.objects.exists()


async def test_todo_state_update_returns_the_previous_list(redis):
    first = await scripts.todo_state_update(redis, instance_id="i", todos='[{"content":"a","status":"pending"}]',
                                            now_iso="2026-01-01T00:00:00.000Z")
    assert first == "[]"
    second = await scripts.todo_state_update(redis, instance_id="i", todos="[]", now_iso="2026-01-01T00:00:01.000Z")
    assert orjson.loads(second) == [{"content": "a", "status": "pending"}]
    assert await redis.llen(keys.todos_history("i")) == 2
    assert await redis.ttl(keys.todos_current("i")) > 0


async def test_update_session_metrics_counts(redis):
    assert await scripts.update_session_metrics(redis, session_id="s", hook_type="pre_tool", now_ms=1000) == (1, 1)
    assert await scripts.update_session_metrics(redis, session_id="s", hook_type="pre_tool", now_ms=61_000) == (2, 2)
    stats = await redis.hgetall(keys.metrics_session("s"))
    assert stats["eventsPerMinute"] == "2.00" and stats["firstEventTime"] == "1000"
    assert await redis.hget(keys.METRICS_GLOBAL_HOOKS, "pre_tool") == "2"


async def test_build_context_of_an_unknown_session_has_lists(redis):
    ctx = await scripts.build_session_context(redis, session_id="none", task_ids=[])
    assert ctx["lastTasks"] == [] and ctx["lastTools"] == [] and ctx["activeTodos"] == []


async def test_signal_bumps_the_rules_version(redis):
    before = int(await redis.get(keys.HOOK_RULES_VERSION) or 0)
    await sync_to_async(HookRule.objects.create)(group="g", pattern="x", action="warn", message="m")
    assert int(await redis.get(keys.HOOK_RULES_VERSION)) == before + 1
