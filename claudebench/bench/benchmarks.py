"""The benchmarks of PERF.md, one entry each; B2–B7 join here as one more entry apiece."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from claudebench.bench import ceilings  # noqa: F401  (the ceilings register first; entries name them)
from claudebench.bench.context import Context
from claudebench.bench.environment import MIGRATIONS, POSTGRES, REDIS
from claudebench.bench.payloads import task_create_body, task_created
from claudebench.bench.registry import Benchmark, Target, register_benchmark
from claudebench.bench.stats import Measurement


async def measure_b1(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
    async with ctx.product() as server:
        return [await ctx.http_load(server, "/rpc", task_create_body(), task_created, n) for n in clients]


def b1_target(m: Measurement, by_id: Mapping[str, Measurement]) -> bool:
    c = by_id["C-asgi-redis-pg"]
    if m.p99_s is None or c.p99_s is None:
        return False
    return m.rate >= 0.6 * c.rate and m.p99_s <= 2 * c.p99_s


register_benchmark(Benchmark(
    id="B1",
    what="task.create over POST /rpc, full pipeline",
    compares_to=("C-asgi-redis-pg",),
    context=("C-asgi", "C-asgi-redis", "C-django"),
    clients=(1, 16, 64),
    target=Target(text="≥60% req/s, p99 ≤2×", check=b1_target, clients=frozenset({16, 64})),
    measure=measure_b1,
    needs=frozenset({REDIS, POSTGRES, MIGRATIONS}),
))  # fmt: skip
from claudebench.bench import bus  # noqa: E402, F401  (B3, B4: the event bus)
from claudebench.bench import hooks as _hooks_b2  # noqa: E402, F401  (B2: hook.pre_tool latency)
from claudebench.bench import ws as _ws_b5  # noqa: E402, F401  (B5: live view fan-out)
