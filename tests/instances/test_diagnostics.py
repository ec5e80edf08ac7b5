"""Operator tools: system.postgres.*, system.redis.*, system.flush (SPEC §5.3.3, §16 rows 54–55)."""

from __future__ import annotations

import pytest
from django.conf import settings

from claudebench.core import keys
from claudebench.core.errors import HandlerError, InvalidParams, Unauthorized
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


async def test_query_returns_rows_of_a_table_by_its_original_name(call, redis, stream_events):
    made = await call("task.create", {"text": "find me", "priority": 7})
    out = await call("system.postgres.query", {"table": "Task", "columns": ["id", "priority", "createdAt"],
                                               "where": "\"priority\" = 7", "orderBy": "\"createdAt\" DESC"})
    assert out["rows"] == [{"id": made["id"], "priority": 7, "createdAt": made["createdAt"]}]
    assert out["totalRows"] == 1 and out["hasMore"] is False and out["schema"] == "public"
    assert [c["name"] for c in out["columns"]] == ["id", "priority", "createdAt"]
    assert out["queryInfo"]["sql"].startswith('SELECT "id", "priority", "createdAt" FROM "public"."Task"')
    [event] = await stream_events("system.postgres.query.executed")
    assert event["payload"]["rowsReturned"] == 1 and event["payload"]["hasWhere"] is True


async def test_query_cannot_write_even_past_the_deny_list(call, redis, stream_events):
    # nextval() writes (it advances a sequence) but passes the keyword deny-list: READ ONLY stops it.
    await call("task.create", {"text": "a row, so the WHERE clause is evaluated"})
    before = await Task.objects.acount()
    with pytest.raises(HandlerError, match="tried to write"):
        await call("system.postgres.query", {"table": "Task", "where": "nextval('auth_user_id_seq') > 0"})
    [event] = await stream_events("system.postgres.query.error")
    assert "write" in event["payload"]["error"]
    assert await Task.objects.acount() == before


async def test_query_cannot_run_past_its_statement_timeout(call, redis, settings):
    settings.CB_PG_QUERY_TIMEOUT_MS = 200
    await call("task.create", {"text": "a row, so the WHERE clause is evaluated"})
    with pytest.raises(HandlerError, match="statement timeout"):
        await call("system.postgres.query", {"table": "Task", "where": "pg_sleep(5) IS NOT NULL"})


@pytest.mark.parametrize("params, field", [
    ({"table": "Task", "where": "1=1; DROP TABLE \"Task\""}, "where"),
    ({"table": "Task", "where": "id = 'x' UNION SELECT password FROM auth_user"}, "where"),
    ({"table": "Task", "where": "1=1 -- comment"}, "where"),
    ({"table": "Task", "orderBy": "id; DELETE FROM \"Task\""}, "orderBy"),
    ({"table": "Task", "columns": ["id\" FROM auth_user --"]}, "columns"),
])
async def test_query_refuses_dangerous_input_as_invalid_params(call, redis, params, field):
    await call("task.create", {"text": "survives"})
    with pytest.raises(InvalidParams) as caught:
        await call("system.postgres.query", params)
    assert caught.value.data[0]["path"] == [field]
    assert await Task.objects.acount() == 1


async def test_query_of_an_unknown_table_is_a_clear_error(call, redis):
    with pytest.raises(HandlerError, match='Table "public"."Nope" not found'):
        await call("system.postgres.query", {"table": "Nope"})


async def test_tables_lists_the_original_tables_with_columns(call, redis, stream_events):
    out = await call("system.postgres.tables", {})
    by_name = {t["name"]: t for t in out["tables"]}
    assert {"Task", "TaskAttachment", "Instance"} <= set(by_name)
    task_cols = {c["name"]: c for c in by_name["Task"]["columns"]}
    assert task_cols["id"]["isPrimaryKey"] is True and task_cols["assignedTo"]["nullable"] is True
    assert any(i["primary"] for i in by_name["Task"]["indexes"])
    assert out["totalTables"] == len(out["tables"]) and out["schema"] == "public"
    [event] = await stream_events("system.postgres.tables.listed")
    assert event["payload"]["tablesFound"] == out["totalTables"]


async def test_redis_get_shows_each_type(call, redis, stream_events):
    await redis.set("cb:test:s", '{"a": 1}')
    await redis.rpush("cb:test:l", "x", "y", "z")
    await redis.zadd("cb:test:z", {"low": 1, "high": 9})
    s = await call("system.redis.get", {"key": "cb:test:s"})
    assert s["exists"] is True and s["type"] == "string" and s["data"] == {"a": 1} and s["ttl"] == -1
    raw = await call("system.redis.get", {"key": "cb:test:s", "format": "raw"})
    assert raw["data"] == '{"a": 1}'
    lst = await call("system.redis.get", {"key": "cb:test:l", "limit": 2})
    assert lst["data"] == {"items": ["x", "y"], "total": 3, "showing": 2, "hasMore": True}
    z = await call("system.redis.get", {"key": "cb:test:z"})
    assert [i["member"] for i in z["data"]["items"]] == ["high", "low"]
    missing = await call("system.redis.get", {"key": "cb:none"})
    assert missing == {"key": "cb:none", "exists": False, "type": "none", "ttl": -2, "size": 0, "data": None}
    inspected = [e["payload"] for e in await stream_events("system.redis.get.inspected")]
    assert inspected[0] == {"key": "cb:test:s", "type": "string", "size": 8, "hasData": True}
    assert inspected[-1] == {"key": "cb:none", "type": "none", "size": 0, "hasData": False}


async def test_redis_keys_scans_with_types(call, redis, stream_events):
    await redis.set("cb:test:a", "1")
    await redis.hset("cb:test:b", "f", "v")
    out = await call("system.redis.keys", {"pattern": "cb:test:*", "count": 1000})
    assert sorted(out["keys"]) == ["cb:test:a", "cb:test:b"] and out["cursor"] == 0
    assert out["keysByType"] == {"cb:test:a": "string", "cb:test:b": "hash"}
    assert "total" not in out
    everything = await call("system.redis.keys", {})
    assert everything["total"] >= 2  # DBSIZE, taken on the first page of "*"
    assert (await stream_events("system.redis.keys.scanned"))[0]["payload"]["keysFound"] == 2


@pytest.mark.parametrize("params", [{"count": 0}, {"count": 1001}, {"cursor": -1}, {"pattern": ""}])
async def test_redis_keys_rejects_bad_input(call, redis, params):
    with pytest.raises(InvalidParams):
        await call("system.redis.keys", params)


async def test_flush_needs_the_confirmation_literal(call, redis):
    await call("task.create", {"text": "keep me"})
    for params in ({}, {"confirm": "yes"}, {"confirm": "FLUSH_ALL_DATA", "includePostgres": "no"}):
        with pytest.raises(InvalidParams):
            await call("system.flush", params)
    assert await Task.objects.acount() == 1 and await redis.zcard(keys.PENDING_TASKS) == 1


async def test_flush_is_refused_when_disabled(call, redis, settings):
    settings.CB_ALLOW_FLUSH = False
    await call("task.create", {"text": "keep me"})
    with pytest.raises(Unauthorized):
        await call("system.flush", {"confirm": "FLUSH_ALL_DATA"})
    assert await Task.objects.acount() == 1 and await redis.zcard(keys.PENDING_TASKS) == 1


async def test_flush_deletes_redis_keys_and_tasks(call, redis, stream_events):
    assert settings.CB_ALLOW_FLUSH is True  # on by default, for compatibility (SPEC §13)
    await call("task.create", {"text": "gone"})
    await call("system.register", {"id": "w", "roles": ["worker"]})
    await redis.set("cb:todos:current:w", "[]")
    out = await call("system.flush", {"confirm": "FLUSH_ALL_DATA"})
    assert out["redis"]["keysDeleted"] > 0 and out["postgres"] == {"tasksDeleted": 1}
    assert "cb:todos:*" in out["redis"]["patterns"]
    assert not await redis.keys("cb:task:*") and not await redis.keys("cb:instance:*")
    assert not await redis.exists("cb:todos:current:w") and not await redis.exists(keys.LEADER_CURRENT)
    assert await Task.objects.acount() == 0
    [event] = await stream_events("system.flushed")  # published after the flush, so it survives
    assert event["payload"]["postgres"] == 1
