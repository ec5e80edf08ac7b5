"""The ceilings of PERF.md, one entry each, measured in the same run as the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

from claudebench.bench import streams
from claudebench.bench.context import Context
from claudebench.bench.environment import CEILING_TABLE, REDIS
from claudebench.bench.payloads import task_create_body, task_created
from claudebench.bench.registry import Ceiling, MeasureFn, register_ceiling
from claudebench.bench.stats import Measurement


def served(app: str, *, factory: bool = False, settings_module: str | None = None) -> MeasureFn:
    """Measure `app`, served like production, with task.create bodies on POST /rpc."""

    async def measure(ctx: Context, clients: Sequence[int]) -> list[Measurement]:
        async with ctx.serve(app, factory=factory, settings_module=settings_module) as server:
            return [await ctx.http_load(server, "/rpc", task_create_body(), task_created, n) for n in clients]

    return measure


register_ceiling(Ceiling(
    id="C-asgi",
    what="bare ASGI app: read JSON, fixed JSON-RPC result",
    measure=served("claudebench.bench.ceiling_app:asgi"),
))  # fmt: skip
register_ceiling(Ceiling(
    id="C-asgi-redis",
    what="C-asgi + 1 EVALSHA (HSET+ZADD+XADD+PUBLISH)",
    measure=served("claudebench.bench.ceiling_app:asgi_redis"),
    needs=frozenset({REDIS}),
))  # fmt: skip
register_ceiling(Ceiling(
    id="C-asgi-redis-pg",
    what="C-asgi-redis + 1 INSERT, async psycopg pool",
    measure=served("claudebench.bench.ceiling_app:asgi_redis_pg"),
    needs=frozenset({REDIS, CEILING_TABLE}),
))  # fmt: skip
register_ceiling(Ceiling(
    id="C-django",
    what="bare async Django view, CommonMiddleware only",
    measure=served(
        "claudebench.bench.django_ceiling:application",
        factory=True,
        settings_module="claudebench.bench.django_settings",
    ),
))  # fmt: skip
register_ceiling(Ceiling(
    id="C-xadd",
    what="redis-py pipelined XADD+PUBLISH, 1 KB envelope",
    measure=streams.measure_xadd,
    needs=frozenset({REDIS}),
    clients=(1,),
))  # fmt: skip
register_ceiling(Ceiling(
    id="C-xread",
    what="redis-py XREADGROUP COUNT 100 + XACK loop",
    measure=streams.measure_xread,
    needs=frozenset({REDIS}),
    clients=(1,),
))  # fmt: skip
