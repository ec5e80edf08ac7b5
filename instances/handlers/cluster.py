"""System handlers (SPEC §5.3.3). The rest of the system domain arrives with the instances issue."""

from __future__ import annotations

from django.conf import settings

from claudebench.core import keys, pg, scripts
from claudebench.core.clock import now_ms
from claudebench.core.pipeline import Ctx
from claudebench.core.registry import Limits, Mcp, handler
from claudebench.core.schema import Empty
from instances.schemas import Services, SystemHealthOut


def _unhealthy(data: Empty) -> dict:
    return {"status": "unhealthy", "services": {"redis": False, "postgres": False, "mcp": False}}


@handler(
    "system.health", input=Empty, output=SystemHealthOut, declared_rate_limit=100, mutating=False,
    limits=Limits(rate=100, timeout_ms=3_000, trip_after=10, open_ms=20_000), fallback=_unhealthy,
    mcp=Mcp(title="System health", tags=("system",)),
)
async def system_health(ctx: Ctx, data: Empty) -> SystemHealthOut:
    """Report overall health: instance heartbeats and the Redis, PostgreSQL and MCP services."""
    r = ctx.redis
    postgres_ok = await pg.ping(timeout_s=1.0)
    if postgres_ok:
        await r.set(keys.SERVICE_POSTGRES, "ok", ex=3600)
    else:
        await r.delete(keys.SERVICE_POSTGRES)
    instance_keys = [key async for key in r.scan_iter(match=keys.INSTANCE_PATTERN, count=500)
                     if key.count(":") == 2]
    health = await scripts.get_system_health(
        r, instance_keys=instance_keys, now_ms=now_ms(), timeout_ms=settings.CB_HEARTBEAT_TIMEOUT_MS
    )
    status = health.status
    if not postgres_ok and status == "healthy":
        status = "degraded"
    return SystemHealthOut(
        status=status, services=Services(redis=health.redis, postgres=postgres_ok, mcp=health.mcp)
    )
