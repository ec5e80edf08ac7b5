"""One Redis connection per event loop, shared by every coroutine, commands auto-pipelined.

The hot path (every handler call runs two or three Lua scripts) spent about a third of its CPU
inside redis-py's per-command machinery: a pool checkout under an asyncio timeout, a health
check, a write syscall and a read per command. Here every command of a loop goes down one
connection: `send()` queues the packed command and its future, one flush per loop iteration
writes everything queued (many coroutines' commands in one syscall), and replies are matched to
futures in order as they arrive (Redis answers a connection's commands in the order sent).

Only commands that never block the connection may use it (EVALSHA of our scripts, SCRIPT LOAD,
plain reads and writes): BLPOP/XREAD BLOCK/SUBSCRIBE would stall every caller behind them and
keep going through redis-py's pool.

Failure semantics match redis-py's client as we use it: connecting is retried (a few attempts,
short backoff); a command whose connection drops while it is in flight raises ConnectionError
(it may or may not have run, so it is never re-sent); the next command reconnects. A caller
that is cancelled leaves its future in the queue, so replies stay matched to their commands.
"""

from __future__ import annotations

import asyncio
import collections
import ssl as ssl_module
from collections.abc import Awaitable, Sequence
from typing import Any

import hiredis
from redis import exceptions as rexc
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF_S = 0.05
DEFAULT_CONNECT_TIMEOUT_S = 5.0


class _Protocol(asyncio.Protocol):
    def __init__(self, mux: Multiplexer):
        self.mux = mux
        self.reader = hiredis.Reader(
            encoding="utf-8" if mux.decode else None, replyError=rexc.ResponseError,
            protocolError=rexc.InvalidResponse,
        )

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.mux._pending
        try:
            while (reply := self.reader.gets()) is not False:
                fut = pending.popleft()
                if fut.done():  # its caller was cancelled; the reply is simply dropped
                    continue
                if isinstance(reply, rexc.ResponseError):
                    fut.set_exception(BaseParser.parse_error(str(reply)))
                else:
                    fut.set_result(reply)
        except (rexc.InvalidResponse, IndexError) as exc:  # unparseable stream: drop the connection
            self.mux._drop(rexc.ConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.mux._drop(rexc.ConnectionError("Connection closed by server." if exc is None else f"Connection lost: {exc}"))

    def pause_writing(self) -> None:
        self.mux._writable.clear()

    def resume_writing(self) -> None:
        self.mux._writable.set()


class _Batch:
    """The replies of one execute_many call: takes the place of a future in the reply queue, once
    per command, and resolves one future with the list when the last reply (or error) is in."""

    __slots__ = ("future", "replies", "left")

    def __init__(self, future: asyncio.Future, n: int) -> None:
        self.future, self.replies, self.left = future, [], n

    def done(self) -> bool:  # all in, or the caller was cancelled (then the rest is dropped)
        return self.future.done()

    def set_result(self, reply: Any) -> None:
        self.replies.append(reply)
        self.left -= 1
        if self.left == 0:
            self.future.set_result(self.replies)

    set_exception = set_result  # an error reply or a dropped connection is that command's reply


class Multiplexer:
    """Auto-pipelined commands on one connection, for the loop that created it."""

    def __init__(self, *, host: str | None = None, port: int = 6379, path: str | None = None, db: int = 0,
                 username: str | None = None, password: str | None = None, ssl: ssl_module.SSLContext | None = None,
                 decode: bool = True, connect_timeout_s: float | None = None):
        self.host, self.port, self.path, self.db = host, port, path, int(db or 0)
        self.username, self.password, self.ssl = username, password, ssl
        self.decode = decode
        self.connect_timeout_s = connect_timeout_s or DEFAULT_CONNECT_TIMEOUT_S
        self.loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._pending: collections.deque[asyncio.Future] = collections.deque()
        self._queued: list[bytes] = []
        self._flush_scheduled = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._connecting: asyncio.Task | None = None
        self._closed = False

    # --- commands -----------------------------------------------------------------------------
    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply (a Redis error reply is raised)."""
        if self._transport is None or not self._writable.is_set():
            await self._ready()
        return await self._send(hiredis.pack_command(args))

    def submit(self, *args: Any) -> Awaitable[Any]:
        """Queue one command now and return its reply to await later: commands submitted one
        after another, before the caller awaits anything, go out in that order in one write.
        Not connected (or the write buffer full): a task that connects and sends it first."""
        if self._transport is None or not self._writable.is_set():
            return self.loop.create_task(self.execute(*args))
        return self._send(hiredis.pack_command(args))

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send many commands back to back; one reply or exception (not raised) per command.
        One future for the lot (a _Batch stands in the reply queue once per command): a future
        and a gather callback per command cost more than the command itself on big batches."""
        if self._transport is None or not self._writable.is_set():
            await self._ready()
        if not commands:
            return []
        replies = self.queue_many(commands)
        if replies is None:  # dropped between the caller's connect and now
            return [rexc.ConnectionError("Redis connection is not open")] * len(commands)
        return await replies

    def queue_many(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future | None:
        """execute_many without waiting: queues the commands now, on the connection open now, and
        returns the future of their replies (as execute_many answers them); None, with nothing
        queued, when no connection is open. Batches queued one after another go out in that order
        on one connection, so a failure of one (a dropped connection) fails all queued after it.
        Does not wait for the write buffer to drain: the caller bounds what it queues."""
        if self._transport is None:
            return None
        batch = _Batch(self.loop.create_future(), len(commands))
        if not commands:
            batch.future.set_result([])
            return batch.future
        self._pending.extend([batch] * len(commands))
        self._queued.append(b"".join([hiredis.pack_command(tuple(c)) for c in commands]))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return batch.future

    def _send(self, packed: bytes) -> asyncio.Future:
        fut = self.loop.create_future()
        if self._transport is None:  # dropped between the caller's connect and now
            fut.set_exception(rexc.ConnectionError("Redis connection is not open"))
            return fut
        self._pending.append(fut)
        self._queued.append(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return fut

    def flush(self) -> None:
        """Write what is queued now rather than at the end of this loop turn: for a caller that
        has CPU work to do before it awaits its reply, so Redis runs the command meanwhile."""
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued:
            return
        data, self._queued = self._queued, []
        if self._transport is not None:
            self._transport.write(b"".join(data))

    # --- connection ---------------------------------------------------------------------------
    async def _ready(self) -> None:
        """Connected, and the transport's write buffer below its high-water mark."""
        if self._transport is None:
            await self._connect()
        await self._writable.wait()

    async def _connect(self) -> None:
        """Open the connection once for every caller waiting on it; a caller that is cancelled
        meanwhile does not cancel the connect the others wait for."""
        if self._closed:
            raise rexc.ConnectionError("Redis multiplexer is closed")
        if self._connecting is None:
            self._connecting = self.loop.create_task(self._open())
            self._connecting.add_done_callback(self._connected)
        await asyncio.shield(self._connecting)

    def _connected(self, task: asyncio.Task) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here: the waiters raise it, an unwaited failure is not logged

    async def _open(self) -> None:
        last: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            if attempt:
                await asyncio.sleep(CONNECT_BACKOFF_S * 2 ** (attempt - 1))
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    if self.path:
                        transport, _ = await self.loop.create_unix_connection(lambda: _Protocol(self), self.path)
                    else:
                        transport, _ = await self.loop.create_connection(
                            lambda: _Protocol(self), self.host, self.port, ssl=self.ssl
                        )
            except (OSError, TimeoutError) as exc:
                last = exc
                continue
            self._transport = transport  # type: ignore[assignment]
            try:
                await self._handshake()
            except BaseException:
                self._drop(rexc.ConnectionError("Redis handshake failed"))
                raise
            return
        where = self.path or f"{self.host}:{self.port}"
        raise rexc.ConnectionError(f"Error connecting to Redis at {where}: {last}")

    async def _handshake(self) -> None:
        commands: list[tuple[Any, ...]] = []
        if self.password:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        for reply in [await self._send(hiredis.pack_command(c)) for c in commands]:
            if isinstance(reply, Exception):
                raise reply

    def _drop(self, exc: Exception) -> None:
        transport, self._transport = self._transport, None
        self._queued = []
        self._writable.set()
        pending, self._pending = self._pending, collections.deque()
        for fut in pending:
            if not fut.done():
                fut.set_exception(exc)
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        self._drop(rexc.ConnectionError("Redis multiplexer closed"))


def _from_client(client: Redis) -> Multiplexer:
    kw = client.connection_pool.connection_kwargs
    cls = client.connection_pool.connection_class
    if kw.get("protocol") not in (None, 2, "2"):
        raise ValueError("the multiplexed connection speaks RESP2; core/redis.py makes RESP2 clients")
    common = dict(db=kw.get("db", 0), username=kw.get("username"), password=kw.get("password"),
                  decode=bool(kw.get("decode_responses")), connect_timeout_s=kw.get("socket_connect_timeout"))
    if issubclass(cls, UnixDomainSocketConnection):
        return Multiplexer(path=kw["path"], **common)
    ssl = None
    if issubclass(cls, SSLConnection):
        ssl = ssl_module.create_default_context(cafile=kw.get("ssl_ca_certs"))
        if kw.get("ssl_cert_reqs") in ("none", ssl_module.CERT_NONE):
            ssl.check_hostname = False
            ssl.verify_mode = ssl_module.CERT_NONE
    return Multiplexer(host=kw.get("host", "localhost"), port=int(kw.get("port", 6379)), ssl=ssl, **common)


def of(client: Redis) -> Multiplexer:
    """The multiplexer beside `client` (same server, database and credentials), made on first use.
    Like the client, it belongs to the loop it was made in (core/redis.py keeps one client per
    loop)."""
    try:
        return client._cb_mux  # type: ignore[attr-defined]
    except AttributeError:
        mux = client._cb_mux = _from_client(client)  # type: ignore[attr-defined]
        return mux


async def close(client: Redis) -> None:
    mux = client.__dict__.pop("_cb_mux", None)
    if mux is not None:
        await mux.close()


class Batch:
    """The few pipeline commands the hot paths use (validator records, hook bookkeeping), queued
    and sent in one go down the client's multiplexed connection; `execute()` answers like
    redis-py's pipeline (replies in order; the first error reply is raised after all ran)."""

    def __init__(self, client: Redis):
        self.client = client
        self.commands: list[tuple[Any, ...]] = []

    def _add(self, *command: Any) -> Batch:
        self.commands.append(command)
        return self

    def set(self, key: str, value: Any, ex: int | None = None) -> Batch:
        return self._add("SET", key, value, "EX", ex) if ex is not None else self._add("SET", key, value)

    def expire(self, key: str, seconds: int) -> Batch:
        return self._add("EXPIRE", key, seconds)

    def xadd(self, key: str, fields: dict[str, Any], maxlen: int | None = None, approximate: bool = True) -> Batch:
        trim = ("MAXLEN", "~" if approximate else "=", maxlen) if maxlen is not None else ()
        return self._add("XADD", key, *trim, "*", *(part for item in fields.items() for part in item))

    def lpush(self, key: str, *values: Any) -> Batch:
        return self._add("LPUSH", key, *values)

    def ltrim(self, key: str, start: int, end: int) -> Batch:
        return self._add("LTRIM", key, start, end)

    def hset(self, key: str, field: str | None = None, value: Any = None,
             mapping: dict[str, Any] | None = None) -> Batch:
        pairs = ([field, value] if field is not None else []) + [p for item in (mapping or {}).items() for p in item]
        return self._add("HSET", key, *pairs)

    def hincrby(self, key: str, field: str, amount: int = 1) -> Batch:
        return self._add("HINCRBY", key, field, amount)

    async def execute(self) -> list[Any]:
        commands, self.commands = self.commands, []
        if not commands:
            return []
        replies = await of(self.client).execute_many(commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
