"""`python -m hooks.bridge` as Claude Code runs it: a subprocess against a live server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.dsn import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# The hook transport contract's own example (examples.pre_tool.claudeCodeToScript.stdin): what
# Claude Code writes on a PreToolUse hook's stdin when it is about to run `rm -rf /`.
RM_RF = {"session_id": "claude-session-123", "tool_name": "Bash",
         "tool_input": {"command": "rm -rf /", "description": "Remove all files"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL, "CB_SESSION_PROCESSOR": "false", "LOG_LEVEL": "WARNING",
    })
    return env


@pytest.fixture
def uvicorn_server(redis):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "claudebench.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=server_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bridge(payload: dict, rpc_url: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "CLAUDEBENCH_RPC_URL": rpc_url, **env}
    full.pop("CLAUDE_INSTANCE_ID", None)
    return subprocess.run([sys.executable, "-m", "hooks.bridge"], input=json.dumps(payload), text=True,
                          capture_output=True, cwd=ROOT, env=full, timeout=30)


def test_bridge_blocks_with_exit_2_and_allows_with_exit_0(uvicorn_server):
    blocked = bridge(RM_RF, uvicorn_server + "/rpc")
    assert blocked.returncode == 2, blocked.stderr
    assert "dangerous command pattern detected: rm -rf" in blocked.stderr
    allowed = bridge({**RM_RF, "hook_event_name": "PreToolUse",
                      "tool_input": {"command": "ls -la", "description": "list files"}}, uvicorn_server + "/rpc")
    assert allowed.returncode == 0 and allowed.stdout == "" and allowed.stderr == ""
    rewritten = bridge({**RM_RF, "tool_input": {"command": "sudo apt install jq"}}, uvicorn_server + "/rpc")
    assert rewritten.returncode == 0
    assert json.loads(rewritten.stdout)["hookSpecificOutput"]["updatedInput"] == {"command": "apt install jq"}
    todo = bridge({"session_id": "claude-session-123", "hook_event_name": "PostToolUse", "tool_name": "TodoWrite",
                   "tool_input": {"todos": [{"content": "Bridge todo", "status": "pending"}]},
                   "tool_response": {}}, uvicorn_server + "/rpc")
    assert todo.returncode == 0, todo.stderr


def test_bridge_fails_open_quickly_when_the_server_is_down():
    started = time.monotonic()
    done = bridge(RM_RF, f"http://127.0.0.1:{free_port()}/rpc", CLAUDEBENCH_TIMEOUT="2")
    assert done.returncode == 0
    assert time.monotonic() - started < 5
    assert done.stderr.count("\n") == 1 and "unreachable" in done.stderr


def test_bridge_run_function_maps_json_rpc_minus_32003_to_exit_2(monkeypatch):
    from hooks import bridge as module

    sent = []

    def post(url, body, timeout):
        sent.append(body)
        return {"jsonrpc": "2.0", "error": {"code": -32003, "message": "Hook blocked execution", "data": "nope"},
                "id": 1}

    monkeypatch.setattr(module, "_post", post)
    assert module.run(json.dumps(RM_RF), {}) == (2, "", "nope\n")
    assert sent[0]["metadata"] == {"sessionId": "claude-session-123"} and sent[0]["method"] == "hook.pre_tool"
    monkeypatch.setattr(module, "_post", lambda url, body, timeout: {
        "jsonrpc": "2.0", "error": {"code": -32000, "message": "Rate limit exceeded"}, "id": 1})
    code, _, err = module.run(json.dumps(RM_RF), {})
    assert code == 1 and "Rate limit exceeded" in err
    assert module.run("not json", {})[0] == 0


def test_bridge_runs_by_file_path_from_another_project(tmp_path):
    """install_claude_hooks writes `python <checkout>/hooks/bridge.py`, run from the user's project."""
    env = {**os.environ, "CLAUDEBENCH_RPC_URL": f"http://127.0.0.1:{free_port()}/rpc", "CLAUDEBENCH_TIMEOUT": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, str(ROOT / "hooks" / "bridge.py")], input=json.dumps(RM_RF), text=True,
                          capture_output=True, cwd=tmp_path, env=env, timeout=30)
    assert done.returncode == 0 and "unreachable" in done.stderr
