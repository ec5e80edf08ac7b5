"""The ceiling ASGI apps of PERF.md: C-asgi, C-asgi-redis and C-asgi-redis-pg.

Each answers any POST with a JSON-RPC result shaped like task.create's, after doing the least
work that variant allows. They import neither Django nor the product, and read their addresses
from the environment the bench gives them (REDIS_URL and DATABASE_URL point at the bench
databases; pool sizes are production's). uvicorn imports this module in every worker, and each
worker opens its own Redis pool and PostgreSQL pool in the lifespan startup.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

TABLE = "cb_bench_ceiling"
CREATE_TABLE_SQL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id text PRIMARY KEY,
    text text NOT NULL,
    status text NOT NULL,
    priority integer NOT NULL,
    created_at timestamptz NOT NULL
)"""
INSERT_SQL = f"INSERT INTO {TABLE} (id, text, status, priority, created_at) VALUES (%s, %s, %s, %s, %s)"
SCRIPT = (Path(__file__).with_name("ceiling_task.lua")).read_text()
# Bench-only keys in the bench's own Redis database; product keys come from core/keys.py.
TASK_KEY = "cb:bench:task:{}"
PENDING_KEY = "cb:bench:tasks:pending"
STREAM_KEY = "cb:bench:stream:task.created"
CHANNEL = "cb:bench:task.created"

_FIXED_RESULT = {"id": "t-ceiling", "text": "bench", "status": "pending", "priority": 50,
                 "createdAt": "2026-01-01T00:00:00.000Z"}  # fmt: skip
_HEADERS = [(b"content-type", b"application/json")]


async def _read_body(receive: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class CeilingApp:
    """A bare ASGI app; `redis` adds one EVALSHA, `postgres` one INSERT on an async pool."""

    def __init__(self, *, redis: bool, postgres: bool):
        self.use_redis = redis
        self.use_postgres = postgres
        self.redis: Any = None
        self.script: Any = None
        self.pool: Any = None
        self.maxlen = 10_000
        self.ids = itertools.count(1)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            body = await _read_body(receive)
            payload = orjson.dumps(await self._answer(body))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": payload})

    async def _answer(self, body: bytes) -> dict:
        request = orjson.loads(body) if body else {}
        if not (self.use_redis or self.use_postgres):
            return {"jsonrpc": "2.0", "result": _FIXED_RESULT, "id": request.get("id")}
        params = request.get("params") or {}
        now = datetime.now(UTC)
        task = {
            "id": f"t-{int(now.timestamp() * 1000)}-{os.getpid()}-{next(self.ids)}",
            "text": str(params.get("text", "")),
            "status": "pending",
            "priority": int(params.get("priority", 50)),
            "createdAt": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if self.use_redis:
            event = orjson.dumps({"type": "task.created", "payload": task,
                                  "metadata": {"timestamp": int(now.timestamp() * 1000)}})  # fmt: skip
            await self.script(
                keys=[TASK_KEY.format(task["id"]), PENDING_KEY, STREAM_KEY],
                args=[task["id"], task["text"], task["priority"], task["createdAt"], event,
                      self.maxlen, CHANNEL],
            )  # fmt: skip
        if self.use_postgres:
            async with self.pool.connection() as conn:  # autocommit: one round trip
                await conn.execute(INSERT_SQL, (task["id"], task["text"], "pending", task["priority"], now))
        return {"jsonrpc": "2.0", "result": task, "id": request.get("id")}

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._open()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _open(self) -> None:
        self.maxlen = int(os.environ.get("CB_STREAM_MAXLEN", "10000"))
        if self.use_redis:
            import redis.asyncio as aioredis

            pool = aioredis.BlockingConnectionPool.from_url(
                os.environ["REDIS_URL"], max_connections=int(os.environ.get("CB_REDIS_MAX_CONNECTIONS", "64"))
            )
            self.redis = aioredis.Redis(connection_pool=pool)
            self.script = self.redis.register_script(SCRIPT)
        if self.use_postgres:
            from psycopg_pool import AsyncConnectionPool

            self.pool = AsyncConnectionPool(
                os.environ["DATABASE_URL"],
                min_size=int(os.environ.get("CB_PG_POOL_MIN", "2")),
                max_size=int(os.environ.get("CB_PG_POOL_MAX", "10")),
                kwargs={"autocommit": True},
                open=False,
            )
            await self.pool.open(wait=True)

    async def _close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        if self.pool is not None:
            await self.pool.close()


asgi = CeilingApp(redis=False, postgres=False)
asgi_redis = CeilingApp(redis=True, postgres=False)
asgi_redis_pg = CeilingApp(redis=True, postgres=True)
