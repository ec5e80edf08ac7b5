"""A small HTTP/1.1 keep-alive load generator: one connection per concurrent client.

httpx costs more CPU per request than the servers under test, and on a 2-core machine the client
shares the cores with them, so this one is raw asyncio protocols: every connection sends one POST
(fixed head, Content-Length body), reads the status line, headers and body (Content-Length or
chunked), records the latency and sends the next request straight from the data callback, with no
task switch in between. Latencies come from time.perf_counter.

A request counts in the measure window when it was sent after the warm-up and answered before the
window closed; every failed answer counts as an error, in the warm-up too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from claudebench.bench.spread import spread
from claudebench.bench.stats import Measurement

# make_body(n) -> request body for the n-th request of the run (n starts at 1).
BodyFactory = Callable[[int], bytes]
# validate(status, body) -> True when the answer is a success.
Validator = Callable[[int, bytes], bool]

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(5)
_ERROR_PREVIEW_BYTES = 600


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str


class _Load:
    """The state one run shares between its connections."""

    def __init__(self, target: Target, make_body: BodyFactory, validate: Validator, timeout_s: float):
        self.target = target
        self.make_body = make_body
        self.validate = validate
        self.timeout_s = timeout_s
        self.head = (
            f"POST {target.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.sequence = 0
        self.window_start = float("inf")
        self.window_end = float("inf")
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: str | None = None
        self.connections: list[_Connection] = []
        self.all_idle = asyncio.Event()
        self.closing = False  # set when the run closes its own connections

    def next_request(self) -> bytes:
        self.sequence += 1
        body = self.make_body(self.sequence)
        return b"%s%d\r\n\r\n%s" % (self.head, len(body), body)

    def keep_going(self, now: float) -> bool:
        return now < self.window_end

    def record(self, sent: float, done: float, status: int, body: bytes) -> None:
        try:
            good = self.validate(status, body)
        except Exception:  # a validator that trips on a malformed answer has found an error
            good = False
        if not good:
            self.fail(f"HTTP {status}: {body[:_ERROR_PREVIEW_BYTES].decode(errors='replace')}")
        elif sent >= self.window_start and done <= self.window_end:
            self.latencies.append(done - sent)

    def fail(self, reason: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = reason

    def went_idle(self) -> None:
        if all(not c.busy for c in self.connections):
            self.all_idle.set()


class _Connection(asyncio.Protocol):
    """One keep-alive connection that sends a request whenever the previous answer is in."""

    def __init__(self, load: _Load):
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.sent_at = 0.0
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self.state = _HEAD
        self.status = 0
        self.need = 0
        self.chunks: list[bytes] = []
        self.close_after = False

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self._abandon(f"unreadable HTTP answer: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.busy = False
            if not self.load.closing:
                self.load.fail(f"connection closed with a request in flight ({exc or 'EOF'})")
            self.load.went_idle()
        if not self.lost.done():
            self.lost.set_result(None)

    # -- requests ----------------------------------------------------------------------------------
    def local_port(self) -> int | None:
        sockname = self.transport.get_extra_info("sockname") if self.transport else None
        return sockname[1] if sockname else None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self) -> None:
        assert self.transport is not None
        self.busy = True
        self.sent_at = perf_counter()
        self.transport.write(self.load.next_request())

    def check_timeout(self, now: float) -> None:
        if self.busy and now - self.sent_at > self.load.timeout_s:
            self._abandon(f"no answer within {self.load.timeout_s:g} s")

    def _abandon(self, reason: str) -> None:
        """Count an error and drop the connection; the run reconnects if the window is open."""
        if self.busy:
            self.busy = False
            self.load.fail(reason)
            self.load.went_idle()
        if self.transport is not None:
            self.transport.abort()

    def _answered(self, body: bytes) -> None:
        done = perf_counter()
        self.busy = False
        status, close_after = self.status, self.close_after
        self._reset()
        self.load.record(self.sent_at, done, status, body)
        if close_after:
            assert self.transport is not None
            self.transport.close()  # the run opens a fresh connection in its place
            self.load.went_idle()
        elif self.load.keep_going(done):
            self.send()
        else:
            self.load.went_idle()

    # -- HTTP/1.1 answer parsing ---------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self.buffer
        while buf:
            if self.state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                if self._read_head(head):
                    continue
                self._answered(b"")
            elif self.state == _BODY:
                if len(buf) < self.need:
                    return
                body = bytes(buf[: self.need])
                del buf[: self.need]
                self._answered(body)
            elif self.state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0], 16)
                del buf[: end + 2]
                self.state, self.need = (_TRAILER, 0) if size == 0 else (_CHUNK_DATA, size + 2)
            elif self.state == _CHUNK_DATA:
                if len(buf) < self.need:
                    return
                self.chunks.append(bytes(buf[: self.need - 2]))
                del buf[: self.need]
                self.state = _CHUNK_SIZE
            else:  # _TRAILER: lines up to an empty one
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                line_empty = end == 0
                del buf[: end + 2]
                if line_empty:
                    self._answered(b"".join(self.chunks))

    def _read_head(self, head: bytes) -> bool:
        """Parse the status line and headers; True when a body follows."""
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                self.close_after = value.strip().lower() == b"close"
        if chunked:
            self.state = _CHUNK_SIZE
            return True
        if length:
            self.state, self.need = _BODY, length
            return True
        if length is None and self.status not in (204, 304) and not 100 <= self.status < 200:
            raise ValueError(f"HTTP {self.status} answer without Content-Length or chunked body")
        return False


async def _connect(load: _Load) -> _Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: _Connection(load), load.target.host, load.target.port)
    return conn


async def _supervise(load: _Load, tick_s: float = 0.2) -> None:
    """Time out stuck requests and replace closed connections while the window is open."""
    while True:
        await asyncio.sleep(tick_s)
        now = perf_counter()
        for i, conn in enumerate(load.connections):
            conn.check_timeout(now)
            if conn.lost.done() and load.keep_going(now):
                try:
                    fresh = await _connect(load)
                except OSError as exc:
                    load.fail(f"reconnect failed: {exc}")
                    continue
                load.connections[i] = fresh
                fresh.send()


async def run_load(
    target: Target,
    *,
    make_body: BodyFactory,
    validate: Validator,
    clients: int,
    warmup_s: float,
    duration_s: float,
    timeout_s: float = 10.0,
    server_pid: int | None = None,
) -> Measurement:
    """Drive `clients` keep-alive connections for warm-up + measure seconds and measure them.

    With the pid of a server on this machine, the connections are first spread evenly over its
    worker processes (spread.py); `Measurement.spread` then says how many each worker holds.
    """
    if clients < 1:
        raise ValueError("clients must be at least 1")
    load = _Load(target, make_body, validate, timeout_s)
    split: list[int] | None = None
    if server_pid is None:
        load.connections = [await _connect(load) for _ in range(clients)]
    else:
        conns, split = await spread(lambda: _connect(load), clients, server_pid=server_pid, port=target.port)
        load.connections = list(conns)  # type: ignore[arg-type]
    began = perf_counter()
    load.window_start = began + warmup_s
    load.window_end = load.window_start + duration_s
    for conn in load.connections:
        conn.send()
    supervisor = asyncio.create_task(_supervise(load))
    try:
        await asyncio.sleep(max(0.0, load.window_end - perf_counter()))
        load.all_idle.clear()
        load.went_idle()
        # Let answers in flight arrive (they are outside the window, so they only close cleanly).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.all_idle.wait(), timeout_s)
    finally:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        load.closing = True
        for conn in load.connections:
            if conn.transport is not None:
                conn.transport.close()
    return Measurement(
        clients=clients,
        ok=len(load.latencies),
        errors=load.errors,
        seconds=duration_s,
        latencies_s=load.latencies,
        first_error=load.first_error,
        spread=tuple(split) if split else None,
    )
