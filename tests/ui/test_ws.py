"""The WebSocket protocol at /ws (SPEC §2.6, §16 rows 10–12, §18.6) through Channels' communicator."""

from __future__ import annotations

import asyncio
import re

import pytest

from claudebench.core import bus, keys

pytestmark = pytest.mark.django_db(transaction=True)


async def test_connect_answers_client_id_and_ping_pong(ws_connect, redis):
    ws = await ws_connect()
    assert re.fullmatch(r"ws-\d{13}-[0-9a-z]+", ws.client_id)
    await ws.send({"action": "ping"})
    pong = await ws.recv_type("pong")
    assert isinstance(pong["timestamp"], int)
    info = await redis.hgetall(keys.ws_client(ws.client_id))
    assert info["userAgent"] == "pytest-ui"


async def test_subscribe_lists_patterns_in_order_sent_and_mirrors_them(ws_connect, redis):
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": ["task.*", "system.health", "*", "task.*"]})
    reply = await ws.recv_type("subscribed")
    assert reply["events"] == ["task.*", "system.health", "*"]
    key = keys.ws_subscriptions(ws.client_id)
    assert await redis.smembers(key) == {"task.*", "system.health", "*"}
    assert 3500 < await redis.ttl(key) <= 3600


async def test_type_is_accepted_as_the_discriminator(ws_connect):
    ws = await ws_connect()
    await ws.send({"type": "subscribe", "events": ["a.b"]})
    assert (await ws.recv_type("subscribed"))["events"] == ["a.b"]
    await ws.send({"type": "ping"})
    await ws.recv_type("pong")


async def test_prefix_pattern_matches_nested_types_only(ws_connect, unique_type):
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": [f"{unique_type}.*"]})
    await ws.recv_type("subscribed")
    await bus.publish(f"{unique_type}x.other", {"n": 0})  # shares the text prefix, not the dotted one
    await bus.publish(f"{unique_type}.created", {"n": 1})
    await bus.publish(f"{unique_type}.attachment.deleted", {"n": 2})
    frames = await ws.events_until(2, unique_type)
    assert [f["event"] for f in frames] == [f"{unique_type}.created", f"{unique_type}.attachment.deleted"]
    assert frames[0]["data"]["payload"] == {"n": 1}
    assert frames[0]["data"]["type"] == f"{unique_type}.created"
    assert frames[0]["data"]["id"].startswith("evt-")


async def test_exact_and_star_patterns_deliver_each_event_once(ws_connect, unique_type):
    exact, star = await ws_connect(), await ws_connect()
    await exact.send({"action": "subscribe", "events": [f"{unique_type}.one"]})
    await star.send({"action": "subscribe", "events": ["*", f"{unique_type}.*", f"{unique_type}.one"]})
    await exact.recv_type("subscribed")
    await star.recv_type("subscribed")
    await bus.publish(f"{unique_type}.two", {})
    first = await bus.publish(f"{unique_type}.one", {})
    assert [f["data"]["id"] for f in await exact.events_until(1, unique_type)] == [first]
    got = await star.events_until(2, unique_type)
    assert [f["event"] for f in got] == [f"{unique_type}.two", f"{unique_type}.one"]
    assert await star.quiet_for(unique_type)  # three matching patterns, still one copy


async def test_task_created_by_a_handler_reaches_the_socket(ws_connect, call):
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": ["task.*"]})
    await ws.recv_type("subscribed")
    out = await call("task.create", {"text": "watch me", "priority": 7})
    while True:
        frame = await ws.recv_type("event")
        if frame["event"] == "task.created" and frame["data"]["payload"]["id"] == out["id"]:
            break
    assert frame["data"]["payload"]["priority"] == 7


async def test_unsubscribe_stops_delivery_and_updates_redis(ws_connect, redis, unique_type):
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": [f"{unique_type}.*", "other.x"]})
    await ws.recv_type("subscribed")
    await ws.send({"action": "unsubscribe", "events": [f"{unique_type}.*", "never.held"]})
    reply = await ws.recv_type("unsubscribed")
    assert reply["events"] == [f"{unique_type}.*", "never.held"]
    assert await redis.smembers(keys.ws_subscriptions(ws.client_id)) == {"other.x"}
    await bus.publish(f"{unique_type}.created", {})
    assert await ws.quiet_for(unique_type)


async def test_backfill_sends_the_last_n_stored_events_oldest_first(ws_connect, unique_type):
    ids = [await bus.publish(f"{unique_type}.tick", {"n": i}) for i in range(6)]
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": [f"{unique_type}.*"], "backfill": 4})
    await ws.recv_type("subscribed")
    got = await ws.events_until(4, unique_type)
    assert [f["data"]["id"] for f in got] == ids[-4:]
    later = await bus.publish(f"{unique_type}.tick", {"n": 6})
    assert [f["data"]["id"] for f in await ws.events_until(1, unique_type)] == [later]


async def test_backfill_skips_request_records(ws_connect, call, redis):
    await call("task.create", {"text": "before"})
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": ["task.create", "task.created"], "backfill": 10})
    await ws.recv_type("subscribed")
    frame = await ws.recv_type("event")
    assert frame["event"] == "task.created"  # the task.create stream holds only a request record
    assert await ws.c.receive_nothing(0.3) or (await ws.recv())["event"] != "task.create"


async def test_backfill_during_publishing_has_no_gap_and_no_duplicate(ws_connect, unique_type):
    published: list[str] = []
    started = asyncio.Event()

    async def publisher() -> None:
        for i in range(120):
            published.append(await bus.publish(f"{unique_type}.tick", {"n": i}))
            if i == 30:
                started.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(publisher())
    await started.wait()
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": [f"{unique_type}.*", "*"], "backfill": 1000})
    await ws.recv_type("subscribed")
    await task
    got = await ws.events_until(len(published), unique_type, wait_s=15)
    assert [f["data"]["id"] for f in got] == published
    assert await ws.quiet_for(unique_type)


@pytest.mark.parametrize("message, code", [
    ("{not json", -32603),
    ("[1, 2]", -32602),
    ('{"action": "dance"}', -32602),
    ('{"events": ["a"]}', -32602),
    ('{"action": "subscribe", "events": "task.*"}', -32602),
    ('{"action": "subscribe", "events": [1]}', -32602),
    ('{"action": "subscribe", "events": ["ta*sk"]}', -32602),
    ('{"action": "subscribe", "events": ["a"], "backfill": -1}', -32602),
    ('{"action": "subscribe", "events": ["a"], "backfill": "5"}', -32602),
    ('{"action": "execute", "request": "task.list"}', -32602),
])
async def test_bad_messages_get_an_error_and_the_socket_stays_open(ws_connect, redis, message, code):
    ws = await ws_connect()
    await ws.send(message)
    error = await ws.recv_type("error")
    assert error["error"]["code"] == code
    assert isinstance(error["error"]["message"], str) and error["error"]["message"]
    assert await redis.exists(keys.ws_subscriptions(ws.client_id)) == 0  # nothing stored
    await ws.send({"action": "ping"})
    await ws.recv_type("pong")


async def test_binary_frame_is_refused_politely(ws_connect):
    ws = await ws_connect()
    await ws.c.send_to(bytes_data=b"\x00\x01")
    assert (await ws.recv_type("error"))["error"]["code"] == -32603
    await ws.send({"action": "ping"})
    await ws.recv_type("pong")


async def test_execute_runs_the_handler_through_the_pipeline(ws_connect, redis):
    ws = await ws_connect()
    await ws.send({"action": "execute", "request": {"jsonrpc": "2.0", "method": "task.create",
                                                    "params": {"text": "from ws"}, "id": "a1"}})
    answer = await ws.recv()
    while "jsonrpc" not in answer:
        answer = await ws.recv()
    assert answer["id"] == "a1"
    assert answer["result"]["text"] == "from ws"
    assert await redis.hget(keys.task(answer["result"]["id"]), "text") == "from ws"


async def test_execute_errors_keep_the_raw_message(ws_connect, redis):
    ws = await ws_connect()
    await ws.send({"action": "execute", "request": {"jsonrpc": "2.0", "method": "no.such", "id": 5}})
    assert await ws.recv() == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found: no.such"},
                               "id": 5}
    await ws.send({"action": "execute", "request": {"jsonrpc": "2.0", "method": "task.update",
                                                    "params": {"id": "t-1", "updates": {"status": "done"}}, "id": 6}})
    bad = await ws.recv()
    assert bad["id"] == 6 and bad["error"]["code"] == -32602
    await ws.send({"action": "execute", "request": {"jsonrpc": "2.0", "method": "task.update",
                                                    "params": {"id": "t-404", "updates": {"priority": 3}}, "id": 7}})
    missing = await ws.recv()
    assert missing["id"] == 7 and missing["error"]["code"] == -32603
    assert "t-404" in missing["error"]["message"]  # the handler's own text, not "Internal error"


async def test_execute_notification_gets_no_answer(ws_connect, redis):
    ws = await ws_connect()
    await ws.send({"action": "execute", "request": {"jsonrpc": "2.0", "method": "task.create",
                                                    "params": {"text": "quiet"}}})
    await ws.send({"action": "ping"})
    assert (await ws.recv())["type"] == "pong"
    assert await ws.c.receive_nothing(0.3)


async def test_disconnect_deletes_the_client_keys(ws_connect, redis):
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": ["task.*"]})
    await ws.recv_type("subscribed")
    assert await redis.exists(keys.ws_subscriptions(ws.client_id), keys.ws_client(ws.client_id)) == 2
    await ws.c.disconnect()
    assert await redis.exists(keys.ws_subscriptions(ws.client_id), keys.ws_client(ws.client_id)) == 0


async def test_stats_aggregate_every_client_from_redis(ws_connect, client, redis):
    a, b = await ws_connect(), await ws_connect()
    await a.send({"action": "subscribe", "events": ["task.*", "*"]})
    await b.send({"action": "subscribe", "events": ["task.*"]})
    await a.recv_type("subscribed")
    await b.recv_type("subscribed")
    # a client of another process: only its Redis keys are here
    await redis.sadd(keys.ws_subscriptions("ws-1-elsewhere"), "hook.*")
    stats = (await client.get("/ws/stats")).json()
    assert stats["totalClients"] == 3
    assert stats["subscriptions"] == {"task.*": 2, "*": 1, "hook.*": 1}
    mine = next(c for c in stats["clients"] if c["id"] == a.client_id)
    assert mine["subscriptions"] == ["*", "task.*"]
    assert mine["metadata"]["userAgent"] == "pytest-ui"
    assert isinstance(mine["metadata"]["connectedAt"], int)


async def test_plain_http_on_ws_is_426_and_stats_refuse_post(client):
    assert (await client.get("/ws")).status_code == 426
    assert (await client.post("/ws/stats")).status_code == 405


async def test_foreign_browser_origin_is_refused(ws_connect):
    await ws_connect(headers=[(b"origin", b"http://evil.example")], expect=False)
    ok = await ws_connect(headers=[(b"origin", b"http://127.0.0.1:3000"), (b"host", b"127.0.0.1:3000")])
    assert ok.client_id


async def test_every_handler_refuses_non_object_params_over_execute(ws_connect, redis):
    """STYLE §9: every handler over the WebSocket transport too; -32602, id echoed, nothing stored."""
    from claudebench.core import registry

    ws = await ws_connect()
    for n, spec in enumerate(registry.specs()):
        await ws.send({"action": "execute", "request": {"jsonrpc": "2.0", "method": spec.event,
                                                        "params": [1, 2, 3], "id": n}})
        answer = await ws.recv()
        while "jsonrpc" not in answer:
            answer = await ws.recv()
        assert answer["id"] == n and answer["error"]["code"] == -32602, (spec.event, answer)
    assert await redis.dbsize() <= 2  # only this client's own keys (no task, no instance was written)


async def test_overlapping_patterns_keep_publish_order(ws_connect, unique_type):
    ws = await ws_connect()
    await ws.send({"action": "subscribe", "events": [f"{unique_type}.a", "*", f"{unique_type}.*"]})
    await ws.recv_type("subscribed")
    kinds = ["a", "b", "c.d"]
    published = [await bus.publish(f"{unique_type}.{kinds[i % 3]}", {"n": i}) for i in range(60)]
    got = await ws.events_until(60, unique_type)
    assert [f["data"]["id"] for f in got] == published
    assert await ws.quiet_for(unique_type)
