"""C-xadd and C-xread: what redis-py alone does with streams in one process (PERF.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter

import orjson
import redis.asyncio as aioredis

from claudebench.bench.context import Context
from claudebench.bench.stats import Measurement

ENVELOPE_BYTES = 1024
BATCH = 100  # XADD+PUBLISH pairs per pipeline; entries per XREADGROUP
STREAM_MAXLEN = 10_000  # as CB_STREAM_MAXLEN's default: production trims its streams the same way
XREAD_ENTRIES = 20_000  # entries C-xread cycles over
# Bench-only keys in the bench's own Redis database.
XADD_STREAM, XADD_CHANNEL = "cb:bench:xadd", "cb:bench:xadd"
XREAD_STREAM, XREAD_GROUP, XREAD_CONSUMER = "cb:bench:xread", "bench", "bench-1"


def envelope(size: int = ENVELOPE_BYTES) -> bytes:
    """A task.created-like event envelope padded to exactly `size` bytes of JSON."""
    base = {"id": "evt-0000000000000-bench", "type": "task.created",
            "payload": {"id": "t-0000000000000", "text": ""}, "metadata": {"timestamp": 0}}  # fmt: skip
    pad = size - len(orjson.dumps(base))
    base["payload"]["text"] = "x" * max(pad, 0)
    return orjson.dumps(base)


async def _timed(ctx: Context, step: Callable[[], Awaitable[int]], label: str) -> Measurement:
    """Run `step` (returns events handled) back to back for warm-up + measure seconds."""
    window_start = perf_counter() + ctx.warmup_s
    window_end = window_start + ctx.duration_s
    latencies: list[float] = []
    events = 0
    while (began := perf_counter()) < window_end:
        handled = await step()
        done = perf_counter()
        if began >= window_start and done <= window_end:
            latencies.append(done - began)
            events += handled
    measurement = Measurement(clients=1, ok=events, errors=0, seconds=ctx.duration_s,
                              latencies_s=latencies, unit="ev", label=label)  # fmt: skip
    ctx.say(f"      1 client:    {measurement.summary()} (latency per {label})")
    return measurement


async def measure_xadd(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
    r = aioredis.Redis.from_url(ctx.env.redis_url)
    data = envelope()

    async def step() -> int:
        pipe = r.pipeline(transaction=False)
        for _ in range(BATCH):
            pipe.xadd(XADD_STREAM, {"event": data}, maxlen=STREAM_MAXLEN, approximate=True)
            pipe.publish(XADD_CHANNEL, data)
        await pipe.execute()
        return BATCH

    try:
        return [await _timed(ctx, step, f"pipeline of {BATCH}")]
    finally:
        await r.delete(XADD_STREAM)
        await r.aclose()


async def measure_xread(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
    r = aioredis.Redis.from_url(ctx.env.redis_url)
    data = envelope()
    await r.delete(XREAD_STREAM)
    for _ in range(XREAD_ENTRIES // BATCH):
        pipe = r.pipeline(transaction=False)
        for _ in range(BATCH):
            pipe.xadd(XREAD_STREAM, {"event": data})
        await pipe.execute()
    await r.xgroup_create(XREAD_STREAM, XREAD_GROUP, id="0")

    async def step() -> int:
        reply = await r.xreadgroup(XREAD_GROUP, XREAD_CONSUMER, {XREAD_STREAM: ">"}, count=BATCH)
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]
        if not ids:  # all read: start the group over the same entries
            await r.xgroup_setid(XREAD_STREAM, XREAD_GROUP, id="0")
            return 0
        await r.xack(XREAD_STREAM, XREAD_GROUP, *ids)
        return len(ids)

    try:
        return [await _timed(ctx, step, f"read of {BATCH} + ack")]
    finally:
        await r.delete(XREAD_STREAM)
        await r.aclose()
