"""B2 (PERF.md): hook.pre_tool latency at one client — Claude Code waits for every pre-tool call."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import orjson

from claudebench.bench.context import Context
from claudebench.bench.environment import MIGRATIONS, POSTGRES, REDIS
from claudebench.bench.loadgen import BodyFactory
from claudebench.bench.registry import Benchmark, Target, register_benchmark
from claudebench.bench.stats import Measurement


def pre_tool_body() -> BodyFactory:
    """A `Bash` `ls -la` pre-tool check per request, each with its own sessionId (as the bridge
    sends them), so the rate limiter runs but never refuses."""
    prefix = uuid.uuid4().hex[:12].encode()

    def make(n: int) -> bytes:
        return (
            b'{"jsonrpc":"2.0","method":"hook.pre_tool","params":{"tool":"Bash","params":{"command":"ls -la",'
            b'"description":"List files"},"sessionId":"bench-%s-%d","instanceId":"bench"},"id":%d,'
            b'"metadata":{"sessionId":"bench-%s-%d"}}' % (prefix, n, n, prefix, n)
        )

    return make


def allowed(status: int, body: bytes) -> bool:
    """Success: HTTP 200 and exactly {"allow": true}."""
    return status == 200 and orjson.loads(body).get("result") == {"allow": True}


async def measure_b2(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
    async with ctx.product() as server:
        return [await ctx.http_load(server, "/rpc", pre_tool_body(), allowed, n) for n in clients]


def b2_target(m: Measurement, by_id: Mapping[str, Measurement]) -> bool:
    c = by_id["C-asgi-redis"]
    return m.p99_s is not None and c.p99_s is not None and m.p99_s <= 2 * c.p99_s


register_benchmark(Benchmark(
    id="B2",
    what="hook.pre_tool (Bash ls -la) over POST /rpc, full pipeline",
    compares_to=("C-asgi-redis",),
    context=("C-asgi",),
    clients=(1,),
    target=Target(text="p99 ≤2× C-asgi-redis p99", check=b2_target),
    measure=measure_b2,
    needs=frozenset({REDIS, POSTGRES, MIGRATIONS}),
))  # fmt: skip
