"""B5 (PERF.md): live view fan-out. 100 WebSocket clients subscribed to `task.*`, 2,000 task.create
calls over /rpc; every client must receive every task.created (100% delivered) and the p99 of
publish → receive (envelope timestamp to arrival, same machine clock) is reported."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence

import httpx
import orjson

from claudebench.bench.context import Context
from claudebench.bench.environment import MIGRATIONS, POSTGRES, REDIS
from claudebench.bench.registry import Benchmark, Target, register_benchmark
from claudebench.bench.stats import Measurement

SOCKETS = 100
CREATES = 2_000
CALLERS = 16  # concurrent task.create callers
DELIVERY_DEADLINE_S = 120.0


class Listener:
    """One WebSocket client: counts the task.created events of this run and their latencies."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.seen: set[str] = set()
        self.latencies_s: list[float] = []
        self.last_at = 0.0
        self.ready = asyncio.Event()
        self.ws = None

    async def run(self, url: str) -> None:
        import websockets

        # No permessage-deflate: the bench measures fan-out, not zlib in one client process.
        async with websockets.connect(url, max_size=None, ping_interval=None, compression=None) as ws:
            self.ws = ws
            await ws.send('{"action":"subscribe","events":["task.*"]}')
            async for raw in ws:
                received_ms = time.time() * 1000
                if self.tag not in raw:  # other traffic: skip the parse
                    if '"subscribed"' in raw:
                        self.ready.set()
                    continue
                frame = orjson.loads(raw)
                if frame.get("type") == "event" and frame.get("event") == "task.created":
                    env = frame["data"]
                    payload = env.get("payload") or {}
                    if str(payload.get("text", "")).startswith(self.tag) and payload.get("id") not in self.seen:
                        self.seen.add(payload["id"])
                        self.latencies_s.append(max(received_ms - env["timestamp"], 0) / 1000)
                        self.last_at = time.perf_counter()


async def _create_all(base: str, tag: str) -> tuple[set[str], int, str | None]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    ids: set[str] = set()
    errors, first_error = 0, None
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(CREATES):
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:

        async def caller() -> None:
            nonlocal errors, first_error
            while not queue.empty():
                n = queue.get_nowait()
                body = {"jsonrpc": "2.0", "method": "task.create", "id": n,
                        "params": {"text": f"{tag} {n}", "priority": 50},
                        "metadata": {"sessionId": f"{tag}-{n}"}}  # one limiter bucket each: never refused
                try:
                    answer = (await http.post("/rpc", content=orjson.dumps(body))).json()
                    if "result" not in answer:
                        raise RuntimeError(f"task.create answered {answer.get('error')}")
                    ids.add(answer["result"]["id"])
                except Exception as exc:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return ids, errors, first_error


async def measure_b5(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
    out = []
    async with ctx.product() as server:
        for sockets in clients:
            out.append(await _one_run(ctx, server.url, sockets))
    return out


async def _one_run(ctx: Context, base: str, sockets: int) -> Measurement:
    tag = f"b5-{uuid.uuid4().hex[:10]}"
    ws_url = base.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
    listeners = [Listener(tag) for _ in range(sockets)]
    tasks = [asyncio.create_task(x.run(ws_url)) for x in listeners]
    try:
        await asyncio.wait_for(asyncio.gather(*(x.ready.wait() for x in listeners)), 60)
        ctx.say(f"  {sockets} WebSocket clients subscribed to task.*; {CREATES} task.create calls")
        started = time.perf_counter()
        ids, errors, first_error = await _create_all(base, tag)
        deadline = time.perf_counter() + DELIVERY_DEADLINE_S
        while time.perf_counter() < deadline and any(len(x.seen) < len(ids) for x in listeners):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.05)
        finished = max([x.last_at for x in listeners] + [started])
    finally:
        for x in listeners:
            if x.ws is not None:
                with contextlib.suppress(Exception):
                    await x.ws.close()
        for t in tasks:
            with contextlib.suppress(Exception):
                await t
    delivered = sum(len(x.seen & ids) for x in listeners)
    missing = sockets * len(ids) - delivered
    dead = next((t.exception() for t in tasks if t.done() and t.exception()), None)
    if missing and first_error is None:
        first_error = f"{missing} deliveries missing" + (f" (client failed: {dead})" if dead else "")
    return Measurement(
        clients=sockets, ok=delivered, errors=errors + missing, seconds=max(finished - started, 1e-9),
        latencies_s=[lat for x in listeners for lat in x.latencies_s], unit="ev",
        label=f"{CREATES} task.create", first_error=first_error,
    )


def b5_target(m: Measurement, by_id: Mapping[str, Measurement]) -> bool:
    return m.errors == 0 and m.ok == m.clients * CREATES and m.p99_s is not None


register_benchmark(Benchmark(
    id="B5",
    what="live view fan-out: WebSocket clients on task.*, 2,000 task.create calls",
    compares_to=("C-xadd",),
    clients=(SOCKETS,),
    target=Target(text="100% delivered; p99 publish→receive reported", check=b5_target),
    measure=measure_b5,
    needs=frozenset({REDIS, POSTGRES, MIGRATIONS}),
))  # fmt: skip
