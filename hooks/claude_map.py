"""Claude Code hook JSON ↔ our handlers, shared by the bridge (`python -m hooks.bridge`) and the
HTTP hook route (`POST /hooks/claude`). Standard library only: the bridge starts for every hook
call, so it must not import Django.

Claude Code sends one JSON object per hook event (`hook_event_name`, `session_id`, `cwd`, and
per event `tool_name`/`tool_input`/`tool_response`, `prompt`, `message`, `task_id`, …; sub-agents
add `agent_id`/`agent_type`). It reads back, from a command hook's stdout on exit 0 or an HTTP
hook's 2xx body, JSON such as `{"hookSpecificOutput": {"hookEventName": "PreToolUse",
"permissionDecision": "deny", "permissionDecisionReason": "…"}}`; a command hook may instead block
with exit code 2 and the reason on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Every hook event install_claude_hooks wires up (TaskCreated/TaskCompleted: Claude Code 2.1.16+).
HOOK_EVENTS = (
    "PreToolUse", "PostToolUse", "UserPromptSubmit", "Notification", "Stop", "SubagentStop",
    "PreCompact", "SessionStart", "SessionEnd", "TaskCreated", "TaskCompleted",
)
TOOL_EVENTS = ("PreToolUse", "PostToolUse")  # the events that take a tool matcher
_NOTIFICATION_TYPES = ("info", "warning", "error", "success")


def event_name(payload: Mapping[str, Any]) -> str:
    """The hook event, with the original bridge's fallbacks (SPEC §2.8)."""
    for key in ("hook_event_name", "event", "event_type", "type", "hook_type"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    if "tool_response" in payload or "tool_result" in payload:
        return "PostToolUse"
    if "tool_name" in payload:
        return "PreToolUse"
    if "prompt" in payload:
        return "UserPromptSubmit"
    return "Unknown"


@dataclass(frozen=True)
class Who:
    session_id: str
    instance_id: str
    agent: dict[str, str] = field(default_factory=dict)


def who(payload: Mapping[str, Any], env: Mapping[str, str]) -> Who:
    """Session and instance of a hook call. Sub-agents share the session id, so each gets its own
    instance id when the payload names it (`agent_id`); SubagentStop is never needed for this."""
    session_id = str(payload.get("session_id") or env.get("CLAUDE_SESSION_ID") or f"claude-{int(time.time() * 1000)}")
    instance_id = env.get("CLAUDE_INSTANCE_ID") or f"claude-code-{session_id[:8]}"
    agent: dict[str, str] = {}
    agent_id = payload.get("agent_id")
    if isinstance(agent_id, str) and agent_id:
        agent["agentId"] = agent_id
        instance_id = f"{instance_id}-{agent_id[:8]}"
    if isinstance(payload.get("agent_type"), str) and payload["agent_type"]:
        agent["agentType"] = payload["agent_type"]
    return Who(session_id=session_id, instance_id=instance_id, agent=agent)


def to_call(payload: Mapping[str, Any], env: Mapping[str, str], now_ms: int | None = None) -> tuple[str, dict] | None:
    """(method, params) of the handler a hook event calls, or None when none applies."""
    event = event_name(payload)
    w = who(payload, env)
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    base = {"sessionId": w.session_id, "instanceId": w.instance_id, "timestamp": ts}
    project = env.get("CLAUDE_PROJECT_DIR") or str(payload.get("cwd") or "")
    tool = payload.get("tool_name")
    if event == "PreToolUse" and isinstance(tool, str) and tool:
        meta = {"projectDir": project, "eventType": event, **w.agent}
        if payload.get("tool_use_id"):
            meta["toolUseId"] = payload["tool_use_id"]
        return "hook.pre_tool", {"tool": tool, "params": payload.get("tool_input"), **base, "metadata": meta}
    if event == "PostToolUse" and isinstance(tool, str) and tool:
        tool_input = payload.get("tool_input") if isinstance(payload.get("tool_input"), dict) else {}
        if tool == "TodoWrite":
            todos = tool_input.get("todos") if isinstance(tool_input.get("todos"), list) else []
            return "hook.todo_write", {"todos": todos, **base}
        result = payload.get("tool_response", payload.get("tool_result"))
        return "hook.post_tool", {"tool": tool, "params": payload.get("tool_input"), "result": result, **base,
                                  "executionTime": 0, "success": True}
    if event in ("TaskCreated", "TaskCompleted"):
        return "hook.post_tool", {"tool": event, "params": dict(payload), "result": None, **base}
    if event == "UserPromptSubmit":
        prompt = payload.get("prompt")
        if isinstance(prompt, dict):
            prompt = prompt.get("text")
        if not isinstance(prompt, str) or not prompt:
            return None
        context = {"projectPath": project, "conversationId": w.session_id, "messageCount": 0}
        return "hook.user_prompt", {"prompt": prompt, "context": context, **base}
    if event == "SessionStart":
        return "system.register", {"id": w.instance_id, "roles": ["claude-code"], **base,
                                   "metadata": {"projectDir": project, "resumeFrom": payload.get("source")}}
    if event == "SessionEnd":
        return "system.unregister", base
    if event in ("Stop", "SubagentStop"):
        kind = "main" if event == "Stop" and not w.agent else "subagent"
        return "hook.agent_stop", {"instanceId": w.instance_id, "sessionId": w.session_id, "agentType": kind,
                                   "timestamp": ts}
    if event == "Notification":
        kind = payload.get("notification_type")
        return "hook.notification", {"message": str(payload.get("message") or ""),
                                     "type": kind if kind in _NOTIFICATION_TYPES else "info", **base}
    if event == "PreCompact":
        size = payload.get("context_size")
        return "hook.pre_compact", {"contextSize": size if isinstance(size, int | float) else 0, **base}
    return None


@dataclass(frozen=True)
class Answer:
    """What Claude Code gets back: `block` (exit 2 / deny) with a reason, or a JSON body."""

    body: dict[str, Any]
    block: str | None = None


def answer(event: str, result: Any = None, error: Mapping[str, Any] | None = None) -> Answer:
    """Turn a handler's result (or JSON-RPC error) into Claude Code's hook output."""
    if error is not None:
        if error.get("code") == -32003 and event == "PreToolUse":  # the original's block signal
            reason = error.get("data") if isinstance(error.get("data"), str) else "Blocked by ClaudeBench"
            return _deny(reason)
        return Answer(body={})
    if not isinstance(result, dict):
        return Answer(body={})
    if event == "PreToolUse":
        if result.get("allow") is False:
            return _deny(str(result.get("reason") or "Blocked by ClaudeBench"))
        body: dict[str, Any] = {}
        if isinstance(result.get("modified"), dict):
            # "ask", not "allow": a rewritten command is shown to the user rather than auto-approved.
            body["hookSpecificOutput"] = {
                "hookEventName": "PreToolUse", "permissionDecision": "ask",
                "permissionDecisionReason": "ClaudeBench rewrote this tool call: " + (result.get("reason") or
                                                                                      "privileges stripped"),
                "updatedInput": result["modified"],
            }
        if result.get("warnings"):
            body["systemMessage"] = "ClaudeBench: " + "; ".join(map(str, result["warnings"]))
        return Answer(body=body)
    if event == "UserPromptSubmit" and isinstance(result.get("modified"), str):
        return Answer(body={"hookSpecificOutput": {"hookEventName": "UserPromptSubmit",
                                                   "additionalContext": result["modified"]}})
    return Answer(body={})


def _deny(reason: str) -> Answer:
    return Answer(block=reason, body={"hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": reason}})
