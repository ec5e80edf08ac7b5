"""Host and Origin checks (DNS rebinding, cross-site calls) on HTTP and WebSocket; the bind rule."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from claudebench.core import metrics
from claudebench.security import bind
from tasks.models import Task
from tests.security.conftest import bearer, rpc_body

pytestmark = pytest.mark.django_db(transaction=True)


def refused(reason: str) -> float:
    return metrics.REFUSED.labels(reason)._value.get()


async def test_foreign_host_header_is_refused(local, redis):
    before = refused("host")
    answer = await local.post("/rpc", json=rpc_body("task.create", {"text": "x"}), headers={"host": "evil.example:3000"})
    assert answer.status_code == 400
    assert "ALLOWED_HOSTS" in answer.json()["error"]["data"]
    assert refused("host") == before + 1
    assert not await Task.objects.aexists()
    assert (await local.get("/", headers={"host": "localhost:3000"})).status_code == 200


async def test_cross_site_origin_is_refused_same_origin_and_cors_origin_pass(local, redis, settings):
    body = rpc_body("task.list", {})
    answer = await local.post("/rpc", json=body, headers={"origin": "http://evil.example"})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == -32002
    rest = await local.post("/task/create", json={"text": "x"}, headers={"origin": "http://evil.example"})
    assert rest.status_code == 403 and "Origin" in rest.json()["message"]
    assert not await Task.objects.aexists()
    same = await local.post("/rpc", json=body, headers={"origin": "http://127.0.0.1:3000"})
    assert same.status_code == 200 and "result" in same.json()
    cors = await local.post("/rpc", json=body, headers={"origin": settings.CORS_ORIGIN})
    assert cors.status_code == 200 and "result" in cors.json()
    assert (await local.post("/rpc", json=body, headers={"origin": "null"})).status_code == 403


async def _websocket(scope_extra: dict, client=("127.0.0.1", 50000), messages=(), until_close=False,
                     until_pong=False):
    """Drive the ASGI app through one WebSocket: connect, send `messages`, return what it sent."""
    from claudebench.asgi import application

    extra = {"host": "127.0.0.1:3000", **scope_extra.pop("headers", {})}
    headers = [(name.encode(), value.encode()) for name, value in extra.items()]
    scope = {"type": "websocket", "path": "/ws", "raw_path": b"/ws", "query_string": b"", "headers": headers,
             "client": client, "server": ("127.0.0.1", 3000), "scheme": "ws", "subprotocols": [],
             "asgi": {"version": "3.0"}, **scope_extra}
    inbox: asyncio.Queue = asyncio.Queue()
    sent: list[dict] = []
    await inbox.put({"type": "websocket.connect"})
    for text in messages:
        await inbox.put({"type": "websocket.receive", "text": text})

    async def receive():
        return await inbox.get()

    async def send(message):
        sent.append(message)
        if message["type"] == "websocket.close":
            await inbox.put({"type": "websocket.disconnect", "code": message.get("code", 1000)})

    task = asyncio.create_task(application(scope, receive, send))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        stop = ("websocket.close",) if until_close or until_pong else ("websocket.close", "websocket.send")
        while not any(m["type"] in stop for m in sent):
            if until_pong and any('"pong"' in m.get("text", "") for m in sent):
                break
            if task.done() or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
    finally:
        if not task.done():
            await inbox.put({"type": "websocket.disconnect", "code": 1000})
            try:
                await asyncio.wait_for(task, 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
    return sent


async def test_websocket_cross_site_origin_and_foreign_host_are_refused(redis):
    sent = await _websocket({"headers": {"origin": "http://evil.example"}})
    assert sent[0]["type"] == "websocket.close" and not any(m["type"] == "websocket.accept" for m in sent)
    sent = await _websocket({"headers": {"host": "evil.example"}})
    assert sent[0]["type"] == "websocket.close"


async def test_websocket_from_remote_needs_a_token(redis, issue):
    sent = await _websocket({}, client=("10.1.2.3", 1234))
    assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008
    _row, token = await issue("agent")
    sent = await _websocket({"headers": bearer(token)}, client=("10.1.2.3", 1234),
                            messages=['{"action":"ping"}'])
    assert sent[0]["type"] == "websocket.accept"


async def test_websocket_message_over_the_limit_closes_with_1009(redis, settings):
    settings.CB_MAX_WS_MESSAGE_BYTES = 1024
    before = refused("ws_message_size")
    sent = await _websocket({}, messages=['{"action":"ping","pad":"' + "x" * 2000 + '"}'], until_close=True)
    assert sent[0]["type"] == "websocket.accept"
    close = [m for m in sent if m["type"] == "websocket.close"]
    assert close and close[0]["code"] == 1009 and "exceeds 1024 bytes" in close[0]["reason"]
    assert refused("ws_message_size") == before + 1


def test_exposed_host_needs_an_active_token(settings):
    from claudebench.security import tokens

    assert bind.is_loopback_host("127.0.0.1") and bind.is_loopback_host("::1") and bind.is_loopback_host("localhost")
    bind.check_sync("127.0.0.1")  # never needs one
    with pytest.raises(bind.UnsafeBind, match="issue_token"):
        bind.check_sync("0.0.0.0")
    row, _token = tokens.issue("lan", "agent")
    bind.check_sync("0.0.0.0")
    tokens.revoke(row)
    with pytest.raises(bind.UnsafeBind):
        bind.check_sync("192.168.1.20")


def test_up_refuses_an_exposed_host_without_tokens(settings):
    settings.HOST = "0.0.0.0"
    with pytest.raises(CommandError, match="not a loopback address"):
        call_command("up", "--no-engines", "--no-setup", "--processes", "tests.infra.procs.PAIR")


async def test_asgi_start_up_refuses_an_exposed_host_without_tokens(settings, redis):
    from claudebench.asgi import application

    settings.HOST = "0.0.0.0"
    inbox = [{"type": "lifespan.startup"}]
    sent = []

    async def receive():
        return inbox.pop(0)

    async def send(message):
        sent.append(message)

    await application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed" and "issue_token" in sent[0]["message"]
    await sync_to_async(lambda: None)()


@pytest.mark.parametrize("levels", [300, 3000])
async def test_websocket_message_nested_too_deep_gets_an_error_frame(redis, levels):
    before = refused("json_depth")
    deep = '{"action":"ping","x":' + "[" * levels + "]" * levels + "}"
    sent = await _websocket({}, messages=[deep, '{"action":"ping"}'], until_pong=True)
    frames = [m["text"] for m in sent if m["type"] == "websocket.send"]
    assert any('"code":-32700' in f and "deeper than 254" in f for f in frames), frames
    assert any('"pong"' in f for f in frames)  # the socket stayed open and answers
    assert refused("json_depth") == before + 1
