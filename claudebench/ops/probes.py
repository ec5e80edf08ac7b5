"""`GET /healthz` (the process answers) and `GET /readyz` (it can serve), for orchestrators.

/readyz runs django-health-check checks concurrently, each bounded by CB_PROBE_TIMEOUT_MS:
PostgreSQL (a fresh connection, not the pool, so an outage shows at once and a recovery too),
Redis (PING), the Lua scripts (SCRIPT EXISTS; missing ones — a restarted Redis — are loaded
again), and this instance's gossip heartbeat when it has one or CB_READY_REQUIRES_GOSSIP is set.
200 {"status":"ready"} or 503 {"status":"not ready"}, each check with `ok`, `ms` and its error.
JSON-RPC `system.health` stays what it was (SPEC §5.3.3).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
from typing import Any

from django.conf import settings
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from claudebench.core import keys
from claudebench.core.clock import now_ms


def _timeout() -> datetime.timedelta:
    return datetime.timedelta(milliseconds=settings.CB_PROBE_TIMEOUT_MS)


@dataclasses.dataclass
class _Check(HealthCheck):
    name = ""

    def __post_init__(self) -> None:
        self.timeout = _timeout()


@dataclasses.dataclass
class PostgresCheck(_Check):
    name = "postgres"

    async def run(self) -> None:
        import psycopg

        from claudebench.core import pg

        params = pg._conninfo_kwargs()
        params["connect_timeout"] = max(1, settings.CB_PROBE_TIMEOUT_MS // 1000)
        try:
            conn = await psycopg.AsyncConnection.connect(**params)
        except psycopg.Error as exc:
            raise ServiceUnavailable(f"cannot connect: {exc.__class__.__name__}") from None
        async with conn:
            await conn.execute("SELECT 1")


@dataclasses.dataclass
class RedisCheck(_Check):
    name = "redis"

    async def run(self) -> None:
        from redis.exceptions import RedisError

        from claudebench.core.redis import get_redis

        try:
            await get_redis().ping()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"no answer: {exc.__class__.__name__}") from None


_SHAS = None


def _shas() -> dict[str, str]:
    global _SHAS
    if _SHAS is None:
        from claudebench.core import scripts

        _SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in scripts.SOURCES.items()}
    return _SHAS


@dataclasses.dataclass
class ScriptsCheck(_Check):
    name = "scripts"

    async def run(self) -> None:
        from redis.exceptions import RedisError

        from claudebench.core import scripts
        from claudebench.core.redis import get_redis

        shas = _shas()
        r = get_redis()
        try:
            present = await r.script_exists(*shas.values())
            if not all(present):
                await scripts.preload(r)  # a restarted Redis forgot them
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"cannot check: {exc.__class__.__name__}") from None


@dataclasses.dataclass
class HeartbeatCheck(_Check):
    name = "heartbeat"

    async def run(self) -> None:
        from redis.exceptions import RedisError

        from claudebench.core.redis import get_redis

        try:
            seen = await get_redis().hget(keys.instance(settings.INSTANCE_ID), "lastSeen")
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"cannot read: {exc.__class__.__name__}") from None
        if seen is None:
            if settings.CB_READY_REQUIRES_GOSSIP:
                raise ServiceUnavailable(f"no heartbeat from the gossip worker of {settings.INSTANCE_ID}")
            return
        age = now_ms() - int(float(seen))
        if age > settings.CB_HEARTBEAT_TIMEOUT_MS:
            raise ServiceUnavailable(f"last heartbeat {age} ms ago (limit {settings.CB_HEARTBEAT_TIMEOUT_MS} ms)")


CHECKS = (PostgresCheck, RedisCheck, ScriptsCheck, HeartbeatCheck)


def healthz() -> dict[str, Any]:
    return {"status": "alive", "instance": settings.INSTANCE_ID}


async def readyz() -> tuple[int, dict[str, Any]]:
    results = await asyncio.gather(*(check().get_result() for check in CHECKS))
    report: dict[str, Any] = {}
    for result in results:
        entry: dict[str, Any] = {"ok": result.error is None, "ms": round(result.time_taken * 1000, 1)}
        if result.error is not None:
            entry["error"] = str(result.error)
        report[result.check.name] = entry
    ready = all(entry["ok"] for entry in report.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", "checks": report}
