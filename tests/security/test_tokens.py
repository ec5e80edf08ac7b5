"""Bearer tokens on every machine surface; scopes enforced once in the pipeline (issue 10)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from claudebench.core import keys, pipeline, registry
from claudebench.core.errors import Unauthorized
from claudebench.core.pipeline import CallMeta, Ctx
from claudebench.security import tokens
from claudebench.security.models import ApiToken
from claudebench.security.scopes import Principal
from tasks.models import Task
from tests.security.conftest import bearer, rpc_body

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN_HANDLERS = {"system.flush", "system.postgres.query", "system.redis.keys", "system.redis.get", "config.set"}


async def _nothing_stored(redis) -> None:
    assert [k async for k in redis.scan_iter(match="cb:task:*")] == []
    assert [k async for k in redis.scan_iter(match="cb:stream:task.*")] == []
    assert not await Task.objects.aexists()


def test_only_the_dangerous_handlers_need_admin():
    assert {s.event for s in registry.specs() if s.scope == "admin"} == ADMIN_HANDLERS
    assert {s.scope for s in registry.specs() if s.event not in ADMIN_HANDLERS} == {"agent"}


async def test_rpc_without_token_from_remote_is_401_and_stores_nothing(remote, redis):
    answer = await remote.post("/rpc", json=rpc_body("task.create", {"text": "nope"}))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    body = answer.json()
    assert body["error"]["code"] == -32002 and body["id"] is None
    assert "Bearer" in body["error"]["data"]
    batch = await remote.post("/rpc/batch", json=[rpc_body("task.create", {"text": "nope"})])
    assert batch.status_code == 401 and batch.json()["error"]["code"] == -32002
    await _nothing_stored(redis)


@pytest.mark.parametrize(("path", "body"), [
    ("/task/create", {"text": "nope"}),
    ("/hooks/claude", {"hook_event_name": "PreToolUse", "session_id": "s", "tool_name": "Bash",
                       "tool_input": {"command": "ls"}}),
    ("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}),
])
async def test_every_surface_refuses_a_remote_caller_without_token(remote, redis, path, body):
    answer = await remote.post(path, json=body)
    assert answer.status_code == 401, answer.text
    await _nothing_stored(redis)
    assert [k async for k in redis.scan_iter(match="cb:mcp:session:*")] == []


async def test_public_documents_need_no_token(remote):
    for path in ("/", "/routes", "/handlers", "/schemas/task.create", "/healthz"):
        assert (await remote.get(path)).status_code == 200, path
    assert (await remote.options("/task/create")).status_code == 204


async def test_bad_token_is_refused_even_from_loopback(local, remote, redis, issue):
    for client in (local, remote):
        for header in ("Bearer cb_nothere_" + "x" * 40, "Bearer garbage", "Basic dXNlcjpwdw=="):
            answer = await client.post("/rpc", json=rpc_body("task.list", {}), headers={"authorization": header})
            assert answer.status_code == 401 and answer.json()["error"]["code"] == -32002
    _row, token = await issue("admin")
    wrong_secret = token[: token.rindex("_") + 1] + "y" * 43
    answer = await remote.post("/rpc", json=rpc_body("task.list", {}), headers=bearer(wrong_secret))
    assert answer.status_code == 401


async def test_agent_token_calls_agent_handlers_but_not_admin_ones(remote, redis, issue):
    _row, token = await issue("agent")
    created = await remote.post("/rpc", json=rpc_body("task.create", {"text": "ok"}), headers=bearer(token))
    assert created.status_code == 200 and "result" in created.json()
    tasks_before = await Task.objects.acount()
    for method, params in (("system.flush", {"confirm": "FLUSH_ALL_DATA"}), ("system.redis.keys", {}),
                           ("config.set", {"key": "x", "value": 1})):
        answer = await remote.post("/rpc", json=rpc_body(method, params), headers=bearer(token))
        assert answer.status_code == 200  # SPEC §2.2.2: JSON-RPC errors travel with HTTP 200
        error = answer.json()["error"]
        assert error["code"] == -32002, error
        assert "admin scope" in error["data"]
    rest = await remote.post("/system/flush", json={"confirm": "FLUSH_ALL_DATA"}, headers=bearer(token))
    assert rest.status_code == 403
    assert rest.json()["message"] == "system.flush needs the admin scope"
    assert await Task.objects.acount() == tasks_before == 1
    assert await redis.exists(keys.task(created.json()["result"]["id"]))


async def test_admin_token_calls_admin_handlers(remote, redis, issue):
    _row, token = await issue("admin")
    answer = await remote.post("/rpc", json=rpc_body("system.redis.keys", {"pattern": "cb:*"}), headers=bearer(token))
    assert "result" in answer.json(), answer.text


async def test_loopback_without_token_is_agent_and_can_be_switched_off(local, redis, settings):
    assert "result" in (await local.post("/rpc", json=rpc_body("task.list", {}))).json()
    refused = (await local.post("/rpc", json=rpc_body("system.redis.keys", {}))).json()
    assert refused["error"]["code"] == -32002
    settings.CB_ALLOW_LOOPBACK_ANONYMOUS = False
    answer = await local.post("/rpc", json=rpc_body("task.list", {}))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == -32002


async def test_revoked_token_stops_working_at_once(remote, redis, issue):
    row, token = await issue("agent")
    assert (await remote.post("/rpc", json=rpc_body("task.list", {}), headers=bearer(token))).status_code == 200
    assert await redis.exists(keys.auth_token(row.prefix))  # cached after the first use
    await sync_to_async(call_command)("revoke_token", str(row.pk))
    answer = await remote.post("/rpc", json=rpc_body("task.list", {}), headers=bearer(token))
    assert answer.status_code == 401


async def test_a_lookup_racing_a_revoke_cannot_resurrect_the_token(redis, issue):
    row, token = await issue("agent")
    await sync_to_async(tokens.revoke)(row)  # writes the revoked state into the cache
    # A fill that read PostgreSQL before the revoke committed arrives late: NX loses.
    stale = ApiToken(id=row.pk, name=row.name, scope=row.scope, prefix=row.prefix, digest=row.digest)
    await redis.set(keys.auth_token(row.prefix), tokens._encode(stale), nx=True)
    assert await tokens.lookup(redis, token) is None
    await redis.delete(keys.auth_token(row.prefix))  # cache lost (flush, eviction): PostgreSQL decides
    assert await tokens.lookup(redis, token) is None


async def test_deleting_a_token_in_the_admin_also_drops_it(remote, redis, issue):
    row, token = await issue("agent")
    assert (await remote.post("/rpc", json=rpc_body("task.list", {}), headers=bearer(token))).status_code == 200
    await sync_to_async(row.delete)()
    assert (await remote.post("/rpc", json=rpc_body("task.list", {}), headers=bearer(token))).status_code == 401


async def test_nested_calls_inherit_the_principal(redis):
    agent = CallMeta(transport="rpc", principal=Principal(scope="agent", token_id=7))
    ctx = Ctx(spec=registry.get("task.list"), meta=agent)
    with pytest.raises(Unauthorized):
        await ctx.call("system.redis.keys", {})
    # Internal callers (workers, subscribers) carry no principal and are trusted.
    assert "keys" in await pipeline.call("system.redis.keys", {}, CallMeta())


async def test_background_hand_off_checks_the_scope_first(remote, redis, issue, settings):
    settings.CB_BACKGROUND_HANDOFF = True
    _row, token = await issue("agent")
    notification = {"jsonrpc": "2.0", "method": "system.flush", "params": {"confirm": "FLUSH_ALL_DATA"}}
    answer = await remote.post("/rpc", json=notification, headers=bearer(token))
    assert answer.status_code == 200 and answer.json()["error"]["code"] == -32002


def test_issue_and_revoke_commands(capsys):
    call_command("issue_token", "ci", "--scope", "operator")
    token = capsys.readouterr().out.strip()
    row = ApiToken.objects.get(prefix=tokens.split(token))
    assert row.scope == "operator" and row.digest == tokens.digest_of(token) and token not in row.digest
    call_command("revoke_token", token)
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert "already revoked" in (call_command("revoke_token", row.prefix) or capsys.readouterr().out)
