"""Connect a project's Claude Code to this server: `.claude/settings.json` hooks and `.mcp.json`.

    manage.py install_claude_hooks [--project DIR] [--style command|http] [--server URL]

Merges into existing files: the user's other settings and hooks stay, our previous entries are
replaced, so running it twice gives the same files.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hooks.claude_map import HOOK_EVENTS, TOOL_EVENTS

BRIDGE = Path(__file__).resolve().parents[2] / "bridge.py"
HOOK_PATH = "/hooks/claude"
TOKEN_VAR = "CLAUDEBENCH_TOKEN"
# Events Claude Code runs only as command hooks: these get the bridge even with --style http.
COMMAND_ONLY = ("SessionStart",)
# Pre-allowed MCP tools, as the original's settings template (SPEC §2.8).
MCP_TOOLS = ("task__create", "task__complete", "task__assign", "system__get_state", "system__health",
             "system__metrics")


def _ours(hook: Any) -> bool:
    """Entries this command wrote earlier (either style)."""
    if not isinstance(hook, dict):
        return False
    command = str(hook.get("command") or "")
    return ("hooks/bridge.py" in command or "hooks.bridge" in command
            or str(hook.get("url") or "").rstrip("/").endswith(HOOK_PATH))


def _our_hook(style: str, server: str, project: Path) -> dict[str, Any]:
    if style == "http":
        return {"type": "http", "url": server + HOOK_PATH, "timeout": 5,
                "headers": {"Authorization": f"Bearer ${TOKEN_VAR}"}, "allowedEnvVars": [TOKEN_VAR]}
    command = (f"CLAUDEBENCH_RPC_URL={shlex.quote(server + '/rpc')} CLAUDE_PROJECT_DIR={shlex.quote(str(project))} "
               f"{shlex.quote(sys.executable)} {shlex.quote(str(BRIDGE))}")
    return {"type": "command", "command": command, "timeout": 10}


def merge_settings(current: dict[str, Any], style: str, server: str, project: Path) -> dict[str, Any]:
    """The settings with our hook on every event; everything else kept as it was."""
    merged = dict(current)
    hooks = dict(merged.get("hooks") or {})
    for event in HOOK_EVENTS:
        groups = []
        for group in hooks.get(event) or []:
            if not isinstance(group, dict):
                groups.append(group)
                continue
            kept = [h for h in group.get("hooks") or [] if not _ours(h)]
            if kept:
                groups.append({**group, "hooks": kept})
        kind = "command" if event in COMMAND_ONLY else style
        ours: dict[str, Any] = {"hooks": [_our_hook(kind, server, project)]}
        if event in TOOL_EVENTS:
            ours = {"matcher": "*", **ours}
        hooks[event] = [*groups, ours]
    merged["hooks"] = hooks
    permissions = dict(merged.get("permissions") or {})
    allow = list(permissions.get("allow") or [])
    for tool in MCP_TOOLS:
        name = f"mcp__claudebench__{tool}"
        if name not in allow:
            allow.append(name)
    permissions["allow"] = allow
    merged["permissions"] = permissions
    return merged


def merge_mcp(current: dict[str, Any], server: str) -> dict[str, Any]:
    merged = dict(current)
    servers = dict(merged.get("mcpServers") or {})
    servers["claudebench"] = {"type": "http", "url": server + "/mcp"}
    merged["mcpServers"] = servers
    return merged


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not valid JSON ({exc}); fix or move it, nothing was changed") from exc
    if not isinstance(data, dict):
        raise CommandError(f"{path} does not hold a JSON object; nothing was changed")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


class Command(BaseCommand):
    help = "Write (or merge) Claude Code hook entries for every hook event, and .mcp.json, into a project."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", default=".", help="the project Claude Code runs in (default: .)")
        parser.add_argument("--style", choices=("command", "http"), default="command",
                            help="command: run the bridge per hook; http: Claude Code posts to /hooks/claude")
        parser.add_argument("--server", default=None, help="server base URL (default http://HOST:PORT)")

    def handle(self, *args, **options) -> None:
        project = Path(options["project"]).expanduser().resolve()
        if not project.is_dir():
            raise CommandError(f"{project} is not a directory")
        host = "localhost" if settings.HOST in ("127.0.0.1", "0.0.0.0") else settings.HOST
        server = (options["server"] or f"http://{host}:{settings.PORT}").rstrip("/")
        settings_path = project / ".claude" / "settings.json"
        mcp_path = project / ".mcp.json"
        new_settings = merge_settings(_read(settings_path), options["style"], server, project)
        new_mcp = merge_mcp(_read(mcp_path), server)
        _write(settings_path, new_settings)
        _write(mcp_path, new_mcp)
        self.stdout.write(f"Claude Code hooks ({options['style']}) → {server} written to {settings_path}")
        self.stdout.write(f"MCP server claudebench → {server}/mcp written to {mcp_path}")
        if options["style"] == "http":
            self.stdout.write(f"Set {TOKEN_VAR} in Claude Code's environment (any value until tokens are checked).")
