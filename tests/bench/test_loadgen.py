"""The raw HTTP/1.1 load generator, against tiny in-process servers and a real C-asgi ceiling."""

from __future__ import annotations

import asyncio
import os
import sys

import orjson
import pytest
from django.conf import settings

from claudebench.bench.loadgen import Target, run_load
from claudebench.bench.payloads import task_create_body, task_created
from claudebench.bench.servers import RssPeak, uvicorn_server

GOOD = b'{"jsonrpc":"2.0","result":{"id":"t-1"},"id":1}'


def _ok(status: int, body: bytes) -> bool:
    return status == 200 and orjson.loads(body)["result"]["id"] == "t-1"


async def _serve(answer: bytes):
    """A keep-alive server that reads one request (head + Content-Length body) and writes `answer`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _load(answer: bytes, clients: int = 2):
    server, port = await _serve(answer)
    async with server:
        return await run_load(Target("127.0.0.1", port, "/rpc"), make_body=lambda n: b'{"n":%d}' % n,
                              validate=_ok, clients=clients, warmup_s=0.05, duration_s=0.3)  # fmt: skip


async def test_content_length_answers_are_counted_with_latencies():
    m = await _load(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD))
    assert m.errors == 0 and m.ok > 0
    assert len(m.latencies_s) == m.ok and m.p50_s is not None and m.p99_s >= m.p50_s


async def test_chunked_answers_are_read_whole():
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, GOOD[:10], len(GOOD) - 10, GOOD[10:])
    m = await _load(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert m.errors == 0 and m.ok > 0


async def test_connection_close_answers_reconnect_without_errors():
    m = await _load(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD)
    )
    assert m.errors == 0 and m.ok > 0


async def test_failed_answers_are_errors_and_the_first_body_is_kept():
    body = b'{"error":"nope"}'
    m = await _load(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert m.ok == 0 and m.errors > 0
    assert m.first_error == 'HTTP 500: {"error":"nope"}'


def test_task_create_bodies_carry_their_own_session():
    make = task_create_body()
    first, second = orjson.loads(make(1)), orjson.loads(make(2))
    assert first["method"] == "task.create" and first["params"] == {"text": "bench task 1", "priority": 50}
    assert first["id"] == 1 and first["metadata"]["sessionId"] != second["metadata"]["sessionId"]
    assert task_created(200, b'{"jsonrpc":"2.0","result":{"id":"t-9"},"id":1}')
    assert not task_created(200, b'{"jsonrpc":"2.0","error":{"code":-32000},"id":1}')
    assert not task_created(500, b"")


@pytest.mark.slow
async def test_load_against_the_c_asgi_ceiling_under_uvicorn():
    env = dict(os.environ)
    async with uvicorn_server(
        "claudebench.bench.ceiling_app:asgi", env=env, workers=1, cwd=settings.BASE_DIR
    ) as server:
        async with RssPeak(server.pid, every_s=0.1) as rss:
            m = await run_load(Target(server.host, server.port, "/rpc"), make_body=task_create_body(),
                               validate=task_created, clients=4, warmup_s=0.2, duration_s=0.8)  # fmt: skip
    assert m.errors == 0, m.first_error
    assert m.ok > 0
    if sys.platform == "linux":
        assert rss.peak and rss.peak > 1_000_000
