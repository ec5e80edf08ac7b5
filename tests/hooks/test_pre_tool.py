"""hook.pre_tool and the validator (SPEC §10.1–10.3, §18.2, §18.6)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from claudebench.core import keys
from claudebench.core.errors import InvalidParams
from hooks.models import HookRule
from hooks.rules import default_rule_rows

pytestmark = pytest.mark.django_db(transaction=True)


async def pre_tool(call, tool, params, **extra):
    return await call("hook.pre_tool", {"tool": tool, "params": params, "sessionId": "s-1", **extra})


async def test_rm_rf_root_is_blocked_with_the_matched_text_as_reason(call, redis, stream_events):
    out = await pre_tool(call, "Bash", {"command": "rm -rf /", "description": "Remove all files"})
    assert out["allow"] is False
    assert out["reason"] == "dangerous command pattern detected: rm -rf"
    assert out["metadata"] == {"severity": "critical", "ruleMatched": "dangerous_operations"}
    assert await redis.get(keys.rejection_reason("bash", "rm-rf")) == out["reason"]
    assert await redis.get(keys.validation("bash", "rm-rf")) == "true"
    [event] = await stream_events("hook.pre_tool.executed")
    assert event["payload"]["validationResult"] == out
    assert event["payload"]["tool"] == "Bash" and event["payload"]["sessionId"] == "s-1"
    decisions = [f for _, f in await redis.xrange(keys.AUDIT_HOOK_DECISIONS) if f.get("source")]
    assert [(d["decision"], d["source"]) for d in decisions] == [("block", "dangerous_operations")]


async def test_ls_is_allowed_and_the_answer_is_exactly_allow_true(call, redis):
    assert await pre_tool(call, "Bash", {"command": "ls -la"}) == {"allow": True}
    assert await redis.get(keys.validation("bash", "ls")) == "true"


async def test_an_unmatched_command_answers_exactly_allow_true(call, redis):
    assert await pre_tool(call, "Bash", {"command": "make test"}) == {"allow": True}
    assert await pre_tool(call, "Read", {"file_path": "/home/me/notes.txt"}) == {"allow": True}


async def test_leading_sudo_is_stripped_into_the_modified_input(call, redis):
    out = await pre_tool(call, "Bash", {"command": "sudo apt install jq", "description": "install"})
    assert out == {"allow": True, "modified": {"command": "apt install jq", "description": "install"}}
    stored = await redis.hget(keys.modifications("bash"), "modified")
    assert stored == '{"command":"apt install jq","description":"install"}'


async def test_sudo_rm_is_blocked_not_rewritten(call, redis):
    out = await pre_tool(call, "Bash", {"command": "sudo rm -r /var/www"})
    assert out["allow"] is False and out["reason"] == "dangerous command pattern detected: sudo rm"


async def test_writing_under_a_system_directory_is_blocked(call, redis):
    out = await pre_tool(call, "Write", {"file_path": "/etc/hosts", "content": "x"})
    assert out["allow"] is False and out["reason"] == "Cannot modify system directory: /etc/"
    assert (await pre_tool(call, "Write", {"file_path": "/home/me/etc.txt", "content": "x"})) == {"allow": True}


async def test_block_reason_quotes_the_match_as_written(call, redis):
    out = await pre_tool(call, "Bash", {"command": "psql -c 'DROP TABLE users'"})
    assert out["reason"] == "dangerous command pattern detected: DROP TABLE"


async def test_warnings_allow_the_call_and_are_recorded(call, redis):
    out = await pre_tool(call, "Bash", {"command": "cat very-large-file.log | head"})
    assert out == {"allow": True, "warnings": ["Warning: Large file operation"]}
    assert await redis.lrange(keys.warnings("bash", "large-file"), 0, -1) == ["Warning: Large file operation"]
    out = await pre_tool(call, "Bash", {"command": "find / -name x"})
    assert out == {"allow": True, "warnings": ["Warning: Filesystem-wide operation"]}
    counters = await redis.hgetall(keys.METRICS_COUNTERS)
    assert counters["hook.validation.warned.medium"] == "2"


async def test_a_safe_prefix_does_not_vouch_for_a_chained_command(call, redis):
    out = await pre_tool(call, "Bash", {"command": "ls; rm -rf /"})
    assert out["allow"] is False


async def test_string_params_are_the_command(call, redis):
    assert (await pre_tool(call, "shell", "sudo ls -la"))["modified"] == "ls -la"


async def test_operator_rule_takes_effect_without_restart(call, redis):
    if not await HookRule.objects.aexists():  # the migration's defaults (emptied by earlier tests)
        await HookRule.objects.abulk_create(HookRule(**row) for row in default_rule_rows())
    assert await pre_tool(call, "Bash", {"command": "curl http://example.com"}) == {"allow": True}
    rule = await HookRule.objects.acreate(group="no_network", tools=["Bash"], severity="high", action="block",
                                          pattern=r"curl\s+\S+", message="Network access refused: {{match}}")
    out = await pre_tool(call, "Bash", {"command": "curl http://example.com"})
    assert out == {"allow": False, "reason": "Network access refused: curl http://example.com",
                   "metadata": {"severity": "high", "ruleMatched": "no_network"}}
    rule.enabled = False
    await rule.asave()
    assert await pre_tool(call, "Bash", {"command": "curl http://example.com"}) == {"allow": True}
    assert (await pre_tool(call, "Bash", {"command": "rm -rf /"}))["allow"] is False  # defaults still there


async def test_params_key_is_required_but_may_be_null(call, redis):
    with pytest.raises(InvalidParams):
        await call("hook.pre_tool", {"tool": "Bash"})
    with pytest.raises(InvalidParams):
        await call("hook.pre_tool", {"tool": "", "params": {}})
    assert await redis.xlen(keys.AUDIT_HOOK_DECISIONS) == 0
    assert await call("hook.pre_tool", {"tool": "Bash", "params": None}) == {"allow": True}


async def test_json_rpc_answers_a_block_as_a_result_by_default(rpc):
    answer = await rpc("hook.pre_tool", {"tool": "Bash", "params": {"command": "rm -rf /"}})
    assert answer["result"]["allow"] is False
    assert answer["result"]["reason"] == "dangerous command pattern detected: rm -rf"


async def test_block_as_error_answers_minus_32003_with_the_reason(rpc, client):
    with override_settings(CB_HOOK_BLOCK_AS_ERROR=True):
        answer = await rpc("hook.pre_tool", {"tool": "Bash", "params": {"command": "rm -rf /"}})
        rest = await client.post("/hook/pre_tool", json={"tool": "Bash", "params": {"command": "rm -rf /"}})
    assert answer["error"] == {"code": -32003, "message": "Hook blocked execution",
                               "data": "dangerous command pattern detected: rm -rf"}
    assert rest.status_code == 403
    assert rest.json()["reason"] == "dangerous command pattern detected: rm -rf"


async def test_environment_rules_replace_the_stored_ones(call, redis, settings):
    settings.CB_HOOK_VALIDATION_RULES = (
        '[{"name": "no_git_push", "tools": ["Bash"], "severity": "high", "action": "block",'
        ' "patterns": [{"regex": "git\\\\s+push", "message": "No pushing: {{match}}"}]}]')
    out = await pre_tool(call, "Bash", {"command": "git push origin main"})
    assert out["reason"] == "No pushing: git push"
    assert await pre_tool(call, "Bash", {"command": "rm -rf /"}) == {"allow": True}  # defaults replaced
    assert await pre_tool(call, "Bash", {"command": "ls; git push"}) != {"allow": True}


def test_a_broken_rules_override_fails_the_system_check(settings):
    from hooks.checks import hook_rule_overrides_parse

    settings.CB_HOOK_VALIDATION_RULES = "[{not json"
    assert [e.id for e in hook_rule_overrides_parse(None)] == ["hooks.E001"]
    settings.CB_HOOK_VALIDATION_RULES = ""
    assert hook_rule_overrides_parse(None) == []
