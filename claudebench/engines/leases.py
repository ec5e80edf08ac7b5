"""Who uses the embedded servers, so the last user out stops them, and only then.

A `make run` and a `make test` (or two test sessions) may share one pair of servers. Each process
that calls ensure_started() without keep records itself as a user of each server in
DATA_DIR/.engines.json; a server started that way is marked auto_stop. stop() removes the caller,
and stops a server only when it is marked auto_stop and no live process uses it any more. Servers
started with keep (`python -m claudebench.engines start`) are pinned: only `engines stop` ends
them. A user that died without stop() (SIGKILL) no longer counts, so the next user out stops the
servers it left behind. Read and written only under engines._common.locked().
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from claudebench import embedded
from claudebench.engines._common import alive

SERVERS = ("postgres", "valkey")


def state_file() -> Path:
    return embedded.DATA_DIR / ".engines.json"


def process_token(pid: int) -> str:
    """pid plus its start time (Linux), so a recycled pid is not taken for a live user."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{pid}:{start}"


def _live(token: str) -> bool:
    pid = int(token.split(":", 1)[0])
    return alive(pid) and process_token(pid) == token


def read() -> dict[str, dict]:
    """{server: {"auto_stop": bool, "users": [token, ...]}} with dead users dropped."""
    try:
        state = json.loads(state_file().read_text())
    except (OSError, ValueError):
        state = {}
    clean = {}
    for server in SERVERS:
        entry = state.get(server)
        if isinstance(entry, dict):
            users = [token for token in entry.get("users", []) if isinstance(token, str) and _live(token)]
            clean[server] = {"auto_stop": bool(entry.get("auto_stop")), "users": users}
    return clean


def write(state: dict[str, dict]) -> None:
    path = state_file()
    scratch = path.with_name(path.name + f".{os.getpid()}")
    scratch.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    scratch.replace(path)


def record_start(state: dict[str, dict], server: str, *, started: bool, keep: bool) -> None:
    """After ensure_<server>(): note who may stop it, and this process as a user unless keep."""
    entry = state.get(server)
    if started or entry is None:
        # A server found running with no record (an older run, a lost file) is treated as pinned.
        entry = state[server] = {"auto_stop": started and not keep, "users": []}
    if keep:
        entry["auto_stop"] = False
        return
    me = process_token(os.getpid())
    if me not in entry["users"]:
        entry["users"].append(me)


def release(state: dict[str, dict], server: str) -> bool:
    """This process stops using server; True when it should now be stopped (nobody left)."""
    entry = state.get(server)
    if entry is None:
        return False
    me = process_token(os.getpid())
    entry["users"] = [token for token in entry["users"] if token != me]
    if entry["auto_stop"] and not entry["users"]:
        del state[server]
        return True
    return False
