"""/healthz and /readyz: in-process, then a live server whose Redis and PostgreSQL go away and return."""

from __future__ import annotations

import contextlib
import uuid

import httpx
import psycopg
import pytest
from django.db import connection

from claudebench.core import keys
from claudebench.core.clock import now_ms
from tests.ops.live import database_url, live_server, wait_until
from tests.own_valkey import OwnValkey

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_and_readyz_in_process(client, redis):
    alive = await client.get("/healthz")
    assert alive.status_code == 200 and alive.json()["status"] == "alive"
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"postgres", "redis", "scripts", "heartbeat"}
    assert all(check["ok"] for check in body["checks"].values())
    assert (await client.post("/readyz")).status_code != 200  # GET/HEAD only


async def test_readyz_needs_a_fresh_heartbeat(client, redis, settings):
    settings.CB_READY_REQUIRES_GOSSIP = True
    missing = await client.get("/readyz")
    assert missing.status_code == 503
    assert "no heartbeat" in missing.json()["checks"]["heartbeat"]["error"]
    key = keys.instance(settings.INSTANCE_ID)
    await redis.hset(key, "lastSeen", now_ms() - settings.CB_HEARTBEAT_TIMEOUT_MS - 1000)
    stale = await client.get("/readyz")
    assert stale.status_code == 503 and "last heartbeat" in stale.json()["checks"]["heartbeat"]["error"]
    await redis.hset(key, "lastSeen", now_ms())
    assert (await client.get("/readyz")).status_code == 200


# --- a live server on a throwaway Valkey and a throwaway PostgreSQL database -----------------------

def _admin(sql: str) -> None:
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres",
                         password=db.get("PASSWORD") or None, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def throwaway_db():
    name = f"cb_probe_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _ready(base: str) -> tuple[int, dict]:
    answer = httpx.get(f"{base}/readyz", timeout=10)
    return answer.status_code, answer.json()


@pytest.mark.slow
def test_readyz_flips_when_redis_or_postgres_goes_away_and_back(tmp_path, throwaway_db):
    valkey = OwnValkey(tmp_path)
    valkey.start()
    try:
        env = {"REDIS_URL": f"unix://{valkey.socket}?db=0", "DATABASE_URL": database_url(throwaway_db),
               "CB_PROBE_TIMEOUT_MS": "1500"}
        with live_server(tmp_path / "server.log", **env) as (base, proc):
            wait_until(lambda: _ready(base)[0] == 200, 20, "ready")

            valkey.stop()
            wait_until(lambda: _ready(base)[0] == 503, 20, "not ready without Redis")
            status, body = _ready(base)
            assert not body["checks"]["redis"]["ok"] and body["checks"]["postgres"]["ok"]
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200  # alive all the same
            valkey.start()  # empty: the scripts check loads the Lua scripts again
            wait_until(lambda: _ready(base)[0] == 200, 30, "ready again with Redis back")

            _admin(f'ALTER DATABASE "{throwaway_db}" ALLOW_CONNECTIONS false')
            wait_until(lambda: _ready(base)[0] == 503, 20, "not ready without PostgreSQL")
            status, body = _ready(base)
            assert not body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]
            _admin(f'ALTER DATABASE "{throwaway_db}" ALLOW_CONNECTIONS true')
            wait_until(lambda: _ready(base)[0] == 200, 20, "ready again with PostgreSQL back")
            assert proc.poll() is None
    finally:
        with contextlib.suppress(Exception):
            valkey.stop()

