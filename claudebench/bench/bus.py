"""B3 (bus publish) and B4 (consume_streams) of PERF.md, beside C-xadd and C-xread.

B3 runs `publish()` of the events bus in this process against the bench's Redis database: the
real path (exactly-once gate, XADD with MAXLEN, PUBLISH, in one EVALSHA per event, sent in
pipelined batches by the outbox) with 1 and 64 concurrent publishers; only stored events count. B4 fills a stream, starts 1 or 2 `manage.py consume_streams` processes of one consumer group
with a no-op subscriber, and measures delivered and acknowledged events per second once the
warm-up entries are done; then it checks the group's counters: processed == written (0 lost,
0 delivered twice), pending 0, lag 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from django.conf import settings

from claudebench.bench import ceilings  # noqa: F401  (C-xadd, C-xread register first)
from claudebench.bench.context import Context
from claudebench.bench.environment import REDIS
from claudebench.bench.registry import Benchmark, Target, register_benchmark
from claudebench.bench.stats import Measurement
from claudebench.core import keys
from claudebench.core.bus import envelope
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.redis import close_redis, get_redis, unlink_matching

B4_TYPE = "bench.consumed"
B4_GROUP = "cb:bench-noop"
B4_SUBSCRIPTION = "bench-noop"


def task_payload() -> dict:
    """A task.created payload whose envelope is about 1 KB, like C-xadd's."""
    return {
        "id": "t-1732560000000",
        "text": "x" * 860,
        "status": "pending",
        "priority": 50,
        "createdAt": iso_ms(now_ms()),
    }


@contextlib.asynccontextmanager
async def bench_redis(ctx: Context) -> AsyncIterator[None]:
    """Point this process's Redis client (get_redis) at the bench database for the block."""
    old = settings.REDIS_URL
    await close_redis()
    settings.REDIS_URL = ctx.env.redis_url
    try:
        yield
    finally:
        await close_redis()
        settings.REDIS_URL = old


async def _publishers(ctx: Context, n: int) -> Measurement:
    """`n` publishers in a loop for warm-up + duration. publish() returns once the event is queued
    in the loop's outbox, so the figure is events *stored* (the outbox's counter) from the start
    of the window until `flush()` returned after the last publish: the seconds include the flush.
    Errors: publishes that raised plus events the outbox failed to store. Latencies: publish()
    calls made inside the window (time to return, i.e. to queue)."""
    from events import outbox
    from events.redis_bus import RedisBus

    bus, payload = RedisBus(), task_payload()
    start = time.perf_counter() + ctx.warmup_s
    end = start + ctx.duration_s
    latencies: list[float] = []
    counts = {"errors": 0}
    first_error: list[str] = []
    at_start: dict[str, int] = {}

    async def publisher() -> None:
        while (began := time.perf_counter()) < end:
            if not at_start and began >= start:
                at_start.update(outbox.stats())
            try:
                await bus.publish("task.created", payload, {"createdBy": "bench"})
            except Exception as exc:  # counted; PERF.md wants 0
                counts["errors"] += 1
                first_error[:1] = first_error or [f"{type(exc).__name__}: {exc}"]
                continue
            done = time.perf_counter()
            if began >= start and done <= end:
                latencies.append(done - began)

    failed_before = outbox.stats()["failed"]
    await asyncio.gather(*(publisher() for _ in range(n)))
    flushed = await bus.flush(60)
    finished = time.perf_counter()
    after = outbox.stats()
    failed = after["failed"] - failed_before
    if not flushed:
        first_error[:1] = first_error or [f"flush timed out with {after['pending']} event(s) not stored"]
    elif failed:
        first_error[:1] = first_error or [f"{failed} event(s) not stored (see the log)"]
    m = Measurement(
        clients=n,
        ok=after["stored"] - at_start.get("stored", after["stored"]),
        errors=counts["errors"] + failed + (0 if flushed else after["pending"]),
        seconds=finished - start,
        latencies_s=latencies,
        unit="ev",
        label="publishers",
        first_error=first_error[0] if first_error else None,
    )
    ctx.say(f"    {n:>3} publisher(s): {m.summary()}  (flush after the window {1000 * (finished - end):.0f} ms)")
    return m


async def _forget_b3(r: aioredis.Redis) -> int:
    """After a round: drop the exactly-once markers and the stream it wrote, so the next round
    (the 64 publishers run after the 1, with B4 between) starts from the data C-xadd started
    from. Left in place, the ~400,000 markers of the 1-publisher round made every AOF rewrite
    (one every ~2 s at this write rate) copy them again: 21.2k ev/s on an empty database, then
    18.0k and 18.4k in rounds run after it."""
    removed = await unlink_matching(r, keys.processed_event("*"), batch=5000)
    await r.unlink(keys.stream("task.created"))
    return removed


async def measure_b3(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
    found = []
    async with bench_redis(ctx):
        for n in clients:
            found.append(await _publishers(ctx, n))
            await _forget_b3(get_redis())
    return found


class _Consumers:
    """`consume_streams bench-noop` processes on the bench databases."""

    def __init__(self, ctx: Context, n: int) -> None:
        env = ctx.env.child_env(
            CB_SUBSCRIPTION_MODULES="claudebench.bench.bus_subscribers",
            CB_BUS_BLOCK_MS="100",
            CB_BUS_STATS_INTERVAL_S="3600",
        )
        self.logs = [
            tempfile.NamedTemporaryFile("w+", prefix="cb-b4-", suffix=".log", delete=False) for _ in range(n)
        ]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "manage.py", "consume_streams", B4_SUBSCRIPTION],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            for log in self.logs
        ]

    def output(self, index: int = 0) -> str:
        return Path(self.logs[index].name).read_text()

    async def ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not all("consume_streams ready" in self.output(i) for i in range(len(self.logs))):
            if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                raise RuntimeError("consume_streams did not start: " + self.output()[-500:])
            await asyncio.sleep(0.05)

    def stop(self) -> list[int]:
        for p in self.procs:
            p.terminate()
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        for log in self.logs:
            log.close()
            Path(log.name).unlink(missing_ok=True)
        return codes


async def _fill(r: aioredis.Redis, stream: str, count: int) -> None:
    body = orjson.dumps(envelope(B4_TYPE, task_payload())).decode()
    for start in range(0, count, 1000):
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(min(1000, count - start)):
                pipe.xadd(stream, {"data": body})
            await pipe.execute()


async def _processed(r: aioredis.Redis) -> int:
    return int(await r.hget(keys.consumer_metrics(B4_GROUP), "processed") or 0)


async def _crossing(r: aioredis.Redis, target: int, timeout_s: float, consumers: _Consumers) -> float:
    """perf_counter() when the group's processed counter reaches `target` (polled every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    while await _processed(r) < target:
        if any(p.poll() is not None for p in consumers.procs):
            raise RuntimeError("consume_streams exited: " + consumers.output()[-500:])
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumers stalled at {await _processed(r)}/{target}")
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def _consume(ctx: Context, r: aioredis.Redis, n: int) -> Measurement:
    """The stream holds `warm` then `total` entries before the consumers start; the rate is taken
    between the moments the group has processed the warm-up entries and all of them."""
    stream = keys.stream(B4_TYPE)
    await r.delete(stream, keys.consumer_metrics(B4_GROUP))
    warm, total = 2_000, max(20_000, int(4_000 * ctx.duration_s))
    await _fill(r, stream, warm + total)
    await r.xgroup_create(stream, B4_GROUP, id="0")
    consumers = _Consumers(ctx, n)
    try:
        began = await _crossing(r, warm, 120, consumers)
        finished = await _crossing(r, warm + total, 600, consumers)
        await consumers.ready()
    finally:
        codes = consumers.stop()
    processed = await _processed(r) - warm
    info = {g["name"]: g for g in await r.xinfo_groups(stream)}[B4_GROUP]
    lost_or_doubled = abs(processed - total) + int(info.get("pending") or 0) + int(info.get("lag") or 0)
    m = Measurement(
        clients=n,
        ok=total,
        errors=lost_or_doubled + sum(1 for c in codes if c != 0),
        seconds=finished - began,
        unit="ev",
        label="consumers",
        first_error=None
        if not lost_or_doubled
        else f"processed {processed} of {total}, pending {info.get('pending')}, lag {info.get('lag')}",
    )
    ctx.say(f"    {n:>3} consumer(s): {m.summary()}  lag after the run {info.get('lag')}")
    await r.delete(stream, keys.consumer_metrics(B4_GROUP))
    return m


async def measure_b4(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
    r = aioredis.Redis.from_url(ctx.env.redis_url, decode_responses=True)
    try:
        return [await _consume(ctx, r, n) for n in clients]
    finally:
        await r.aclose()


def _half_of(ceiling: str):
    def check(m: Measurement, by_id) -> bool:
        return m.rate >= 0.5 * by_id[ceiling].rate

    return check


register_benchmark(Benchmark(
    id="B3",
    what="events bus publish(), task-sized, exactly-once, stream + pub/sub",
    compares_to=("C-xadd",),
    clients=(1, 64),
    target=Target(text="≥50% of C-xadd ev/s", check=_half_of("C-xadd")),
    measure=measure_b3,
    needs=frozenset({REDIS}),
))  # fmt: skip
register_benchmark(Benchmark(
    id="B4",
    what="consume_streams, no-op subscriber, delivered + acked",
    compares_to=("C-xread",),
    clients=(1, 2),
    target=Target(text="≥50% of C-xread ev/s; 0 lost/dup", check=_half_of("C-xread"), clients=frozenset({1})),
    measure=measure_b4,
    needs=frozenset({REDIS}),
))  # fmt: skip
