"""manage.py install_claude_hooks: merge into a project's Claude Code settings, idempotently."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from hooks.claude_map import HOOK_EVENTS

USER_HOOK = {"type": "command", "command": "npx prettier --write"}


def existing(tmp_path):
    claude = tmp_path / ".claude"
    claude.mkdir()
    (claude / "settings.json").write_text(json.dumps({
        "model": "opus", "env": {"FOO": "1"}, "permissions": {"allow": ["Bash(ls:*)"], "deny": ["Read(.env)"]},
        "hooks": {"PostToolUse": [{"matcher": "Write", "hooks": [USER_HOOK]}]},
    }))
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"type": "stdio", "command": "x"}}}))


def read(tmp_path):
    return (json.loads((tmp_path / ".claude" / "settings.json").read_text()),
            json.loads((tmp_path / ".mcp.json").read_text()))


@pytest.mark.parametrize("style", ["command", "http"])
def test_merges_without_losing_keys_and_twice_is_the_same(tmp_path, style):
    existing(tmp_path)
    call_command("install_claude_hooks", project=str(tmp_path), style=style, server="http://localhost:3000")
    first = read(tmp_path)
    call_command("install_claude_hooks", project=str(tmp_path), style=style, server="http://localhost:3000")
    assert read(tmp_path) == first
    cfg, mcp = first
    assert cfg["model"] == "opus" and cfg["env"] == {"FOO": "1"}
    assert cfg["permissions"]["deny"] == ["Read(.env)"] and "Bash(ls:*)" in cfg["permissions"]["allow"]
    assert "mcp__claudebench__task__create" in cfg["permissions"]["allow"]
    assert set(cfg["hooks"]) == set(HOOK_EVENTS)
    assert cfg["hooks"]["PostToolUse"][0] == {"matcher": "Write", "hooks": [USER_HOOK]}
    for event in HOOK_EVENTS:
        ours = cfg["hooks"][event][-1]["hooks"]
        assert len(ours) == 1 and ours[0]["type"] == ("command" if event == "SessionStart" else style)
    if style == "http":
        hook = cfg["hooks"]["PreToolUse"][-1]["hooks"][0]
        assert hook["url"] == "http://localhost:3000/hooks/claude"
        assert hook["headers"] == {"Authorization": "Bearer $CLAUDEBENCH_TOKEN"}
    else:
        assert "hooks/bridge.py" in cfg["hooks"]["Stop"][-1]["hooks"][0]["command"]
    assert mcp["mcpServers"]["other"] == {"type": "stdio", "command": "x"}
    assert mcp["mcpServers"]["claudebench"] == {"type": "http", "url": "http://localhost:3000/mcp"}


def test_switching_style_replaces_our_entries(tmp_path):
    call_command("install_claude_hooks", project=str(tmp_path), style="command", server="http://h:1")
    call_command("install_claude_hooks", project=str(tmp_path), style="http", server="http://h:1")
    cfg, _ = read(tmp_path)
    assert [h["type"] for g in cfg["hooks"]["PreToolUse"] for h in g["hooks"]] == ["http"]
    assert [h["type"] for g in cfg["hooks"]["SessionStart"] for h in g["hooks"]] == ["command"]


def test_a_broken_settings_file_is_refused_and_left_alone(tmp_path):
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.json").write_text("{oops")
    with pytest.raises(CommandError):
        call_command("install_claude_hooks", project=str(tmp_path))
    assert (tmp_path / ".claude" / "settings.json").read_text() == "{oops"
