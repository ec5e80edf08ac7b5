"""Claude Code command hook → ClaudeBench: `python -m hooks.bridge` (or `python hooks/bridge.py`).

Reads one hook JSON object on stdin, calls the server's JSON-RPC endpoint, and answers the way
Claude Code reads command hooks: exit 2 with the reason on stderr blocks a tool call; exit 0 with
JSON on stdout otherwise. When the server cannot be reached within a short timeout it fails open:
exit 0 and one line on stderr. Standard library only, so it starts fast.

Environment: CLAUDEBENCH_RPC_URL (default http://localhost:3000/rpc), CLAUDEBENCH_TIMEOUT
(seconds, default 3), CLAUDE_SESSION_ID, CLAUDE_INSTANCE_ID, CLAUDE_PROJECT_DIR.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a file path from another project's settings.json
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hooks.claude_map import answer, event_name, to_call

DEFAULT_URL = "http://localhost:3000/rpc"


def _post(url: str, body: dict, timeout: float) -> dict:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json",
        "User-Agent": "claudebench-hook-bridge/1.0"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def run(stdin_text: str, env: dict[str, str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) for one hook call."""
    try:
        payload = json.loads(stdin_text) if stdin_text.strip() else {}
    except json.JSONDecodeError as exc:
        return 0, "", f"claudebench: hook input is not JSON ({exc}); allowing\n"
    if not isinstance(payload, dict):
        return 0, "", "claudebench: hook input is not a JSON object; allowing\n"
    call = to_call(payload, env)
    if call is None:
        return 0, "", ""
    method, params = call
    url = env.get("CLAUDEBENCH_RPC_URL") or DEFAULT_URL
    try:
        timeout = float(env.get("CLAUDEBENCH_TIMEOUT") or 3)
    except ValueError:
        timeout = 3.0
    request = {"jsonrpc": "2.0", "method": method, "params": params, "id": int(time.time() * 1000) % 100000}
    if isinstance(params.get("sessionId"), str):
        # Each Claude Code session is its own rate-limit and audit actor (SPEC §2.2.1), not the server.
        request["metadata"] = {"sessionId": params["sessionId"]}
    try:
        reply = _post(url, request, timeout)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, "", f"claudebench: server unreachable at {url} ({reason}); allowing\n"
    if not isinstance(reply, dict):
        return 0, "", "claudebench: unexpected answer from the server; allowing\n"
    event = event_name(payload)
    error = reply.get("error") if isinstance(reply.get("error"), dict) else None
    result = answer(event, reply.get("result"), error)
    if result.block is not None:
        return 2, "", result.block + "\n"
    if error is not None:  # non-blocking: Claude Code shows it and carries on
        return 1, "", f"claudebench: {method} failed: {error.get('message')} ({error.get('code')})\n"
    return 0, (json.dumps(result.body) + "\n") if result.body else "", ""


def main() -> None:
    code, out, err = run(sys.stdin.read(), dict(os.environ))
    if out:
        sys.stdout.write(out)
    if err:
        sys.stderr.write(err)
    sys.exit(code)


if __name__ == "__main__":
    main()
