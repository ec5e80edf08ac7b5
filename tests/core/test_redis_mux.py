"""The multiplexed Redis connection the Lua scripts go through (core/redis_mux.py), on real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as rexc

from claudebench.core import redis_mux, scripts


@pytest.fixture
async def mux(redis):
    m = redis_mux.of(redis)
    assert m is not None
    yield m


async def test_one_mux_per_client_on_the_clients_database(redis, mux):
    assert redis_mux.of(redis) is mux
    await mux.execute("SET", "mux:db", "here")
    assert await redis.get("mux:db") == "here"  # the pool's connection sees it: same database


async def test_concurrent_commands_share_one_connection_and_get_their_own_replies(redis, mux):
    replies = await asyncio.gather(*(mux.execute("ECHO", f"reply-{i}") for i in range(500)))
    assert replies == [f"reply-{i}" for i in range(500)]
    clients = [c for c in await redis.client_list() if c.get("cmd") in ("echo", "client|list")]
    assert len([c for c in clients if c.get("cmd") == "echo"]) == 1  # all 500 went down one socket


async def test_error_replies_raise_redis_py_exception_classes(redis, mux):
    await redis.set("mux:string", "x")
    with pytest.raises(rexc.ResponseError, match="WRONGTYPE"):
        await mux.execute("HSET", "mux:string", "f", "v")
    with pytest.raises(rexc.NoScriptError):
        await mux.execute("EVALSHA", "0" * 40, 0)
    assert await mux.execute("GET", "mux:string") == "x"  # the connection is still in step


async def test_execute_many_returns_errors_in_place(redis, mux):
    await redis.set("mux:string", "x")
    replies = await mux.execute_many([("INCR", "mux:n"), ("LPUSH", "mux:string", "v"), ("INCR", "mux:n")])
    assert replies[0] == 1 and replies[2] == 2
    assert isinstance(replies[1], rexc.ResponseError)


async def test_a_cancelled_caller_does_not_shift_the_replies_of_others(redis, mux):
    assert await mux.execute("PING") == "PONG"
    slow = asyncio.ensure_future(mux.execute("ECHO", "slow"))
    await asyncio.sleep(0)  # sent (queued for this loop iteration's write), not answered yet
    slow.cancel()
    assert await mux.execute("ECHO", "after") == "after"
    assert slow.cancelled()


async def test_a_caller_cancelled_while_connecting_does_not_stop_the_connect(redis, mux):
    first = asyncio.ensure_future(mux.execute("ECHO", "first"))
    second = asyncio.ensure_future(mux.execute("ECHO", "second"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "second"


async def test_a_dropped_connection_fails_in_flight_calls_and_the_next_call_reconnects(redis, mux):
    my_id = await mux.execute("CLIENT", "ID")
    # Redis answers the kill of the calling connection, then closes it: the PING behind it is lost.
    killed, lost = await mux.execute_many([("CLIENT", "KILL", "ID", my_id, "SKIPME", "no"), ("PING",)])
    assert killed == 1 or isinstance(killed, rexc.ConnectionError)
    assert isinstance(lost, rexc.ConnectionError)
    assert await mux.execute("PING") == "PONG"
    assert await mux.execute("CLIENT", "ID") != my_id  # a new connection


async def test_scripts_reload_after_the_server_lost_them(redis):
    await redis.script_flush()
    assert not (await redis.script_exists(scripts.SHAS["exactly_once_delivery"]))[0]
    delivered, _ = await scripts.exactly_once_delivery(
        redis, event_id="evt-mux-1", event_type="mux.test", envelope="{}", maxlen=10, stream_ttl_s=60, marker_ttl_s=60,
    )
    assert delivered
    assert (await redis.script_exists(scripts.SHAS["exactly_once_delivery"]))[0]


async def test_scripts_hash_like_redis(redis):
    assert await redis.script_load(scripts.SOURCES["task_create"]) == scripts.SHAS["task_create"]


async def test_a_server_that_cannot_be_reached_raises_connection_error():
    mux = redis_mux.Multiplexer(host="127.0.0.1", port=1, connect_timeout_s=0.5)
    with pytest.raises(rexc.ConnectionError, match="127.0.0.1:1"):
        await mux.execute("PING")
    await mux.close()
    with pytest.raises(rexc.ConnectionError, match="closed"):
        await mux.execute("PING")
