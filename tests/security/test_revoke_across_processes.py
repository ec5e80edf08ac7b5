"""A token revoked in one process is refused by another server process at its next request."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import sync_to_async

from claudebench.security import tokens
from tests.ops.live import live_server
from tests.security.conftest import bearer, rpc_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def test_revoked_here_refused_there(redis, tmp_path):
    row, token = await sync_to_async(tokens.issue)("two-processes", "agent")
    with live_server(tmp_path / "server.log", CB_ALLOW_LOOPBACK_ANONYMOUS="false") as (base, _proc):
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.post("/rpc", json=rpc_body("task.list", {}))).status_code == 401
            ok = await http.post("/rpc", json=rpc_body("task.list", {}), headers=bearer(token))
            assert ok.status_code == 200 and "result" in ok.json()  # the server cached it as active
            await sync_to_async(tokens.revoke)(row)  # this process: the admin, a command, a shell
            refused = await http.post("/rpc", json=rpc_body("task.list", {}), headers=bearer(token))
            assert refused.status_code == 401 and refused.json()["error"]["code"] == -32002
