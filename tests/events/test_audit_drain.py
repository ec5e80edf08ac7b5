"""The audit drain (issue 4 item 6): streams → AuditEvent, acknowledged after the insert, once per id."""

from __future__ import annotations

import asyncio

import orjson
import psycopg
import pytest
from django.db import connection

from claudebench.core import bus as core_bus
from claudebench.core import keys
from events import subscriptions
from events.models import AuditEvent

from .conftest import wait_until
from .procs import Worker, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "cb:audit-drain"


def audit_entry(action: str, actor: str, result: str = "success", **extra) -> dict[str, str]:
    """An entry as SPEC §3.6 writes it to cb:audit:general."""
    return {"action": action, "actor": actor, "resource": action, "result": result, "reason": "",
            "metadata": orjson.dumps(extra).decode(), "timestamp": "2026-11-25T10:30:00.000Z"}


async def rows() -> dict[str, AuditEvent]:
    return {r.event_id: r async for r in AuditEvent.objects.all()}


async def test_every_event_request_record_and_audit_entry_becomes_one_row(redis, running):
    drain = subscriptions.get("audit")
    published = await core_bus.publish("task.created", {"id": "t-1"}, {"createdBy": "worker-1"},
                                       correlation_id="corr-9")
    await core_bus.record_request("task.create", {"text": "x"}, client_id="sess-1")
    general = await redis.xadd(keys.AUDIT_GENERAL, audit_entry("task.create", "sess-1", correlationId="corr-9"))
    decision = await redis.xadd(keys.AUDIT_HOOK_DECISIONS, {"tool": "pre_tool", "decision": "blocked",
                                                            "reason": "rm -rf", "timestamp": "2026-11-25T10:30:00.000Z",
                                                            "instanceId": "inst-1"})
    await redis.xadd("cb:stream:session:s-1", {"data": orjson.dumps(core_bus.envelope("x.y", {})).decode()})
    async with running(drain):
        await wait_until(lambda: AuditEvent.objects.acount(), what="rows")
        await wait_until(_count_is(4), what="four rows")
    found = await rows()
    event = found[published]
    assert (event.kind, event.event_type, event.actor, event.correlation_id) == (
        "event", "task.created", "worker-1", "corr-9")
    request = next(r for r in found.values() if r.kind == "request")
    assert (request.event_type, request.actor, request.payload) == ("task.create", "sess-1", {"text": "x"})
    general_row = found[f"{keys.AUDIT_GENERAL}/{general}"]
    assert (general_row.kind, general_row.event_type, general_row.actor, general_row.result,
            general_row.correlation_id) == ("audit", "task.create", "sess-1", "success", "corr-9")
    hook_row = found[f"{keys.AUDIT_HOOK_DECISIONS}/{decision}"]
    assert (hook_row.event_type, hook_row.actor, hook_row.result) == ("hook.pre_tool", "inst-1", "blocked")
    assert not any(r.stream.startswith("cb:stream:session:") for r in found.values())
    assert (await redis.xpending(keys.stream("task.created"), GROUP))["pending"] == 0


async def test_text_postgres_cannot_store_is_replaced_not_dead_lettered(redis, running):
    drain = subscriptions.get("audit")
    await redis.xadd(keys.AUDIT_GENERAL, audit_entry("hook.pre_tool", "a\x00b", command="ls\x00"))
    event_id = await core_bus.publish("task.created", {"text": "nul\x00here"})
    async with running(drain):
        await wait_until(_count_is(2), what="both rows")
    found = await rows()
    assert found[event_id].payload == {"text": "nul\ufffdhere"}
    assert any(r.actor == "a\ufffdb" for r in found.values())
    assert await redis.exists(keys.dlq("task.created")) == 0


def _count_is(n: int):
    async def check() -> bool:
        return await AuditEvent.objects.acount() == n
    return check


async def test_redelivery_does_not_duplicate_rows(redis, running):
    drain = subscriptions.get("audit")
    for n in range(5):
        await core_bus.publish("task.created", {"n": n})
    async with running(drain):
        await wait_until(_count_is(5))
    await redis.xgroup_setid(keys.stream("task.created"), GROUP, id="0")  # deliver everything again
    async with running(drain, name="again") as consumer:
        await wait_until(lambda: consumer.totals.processed == 5)
    assert await AuditEvent.objects.acount() == 5


def _admin_conn() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(host=db.get("HOST") or "127.0.0.1", port=db.get("PORT") or 5432,
                           user=db.get("USER") or "postgres", password=db.get("PASSWORD") or None,
                           dbname="postgres", autocommit=True)


def _outage(db_name: str, down: bool) -> None:
    """Refuse (or allow again) new connections to the test database and cut the drain's ones."""
    with _admin_conn() as conn:
        conn.execute(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS {"false" if down else "true"}')
        if down:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND application_name = 'cb-drain-test'", [db_name])


@pytest.mark.slow
async def test_postgres_outage_delays_the_audit_but_loses_nothing(redis):
    db_name = connection.settings_dict["NAME"]
    drain = Worker("consume_streams", "audit", env=worker_env(APPLICATION_NAME="1"))
    try:
        await wait_until(lambda: "consume_streams ready" in drain.output() or drain.proc.poll() is not None, 30)
        assert drain.proc.poll() is None, drain.output()
        before = [await core_bus.publish("task.created", {"n": n}) for n in range(20)]
        await wait_until(_count_is(20), 20, "rows before the outage")

        await asyncio.to_thread(_outage, db_name, True)
        try:
            during = [await core_bus.publish("task.updated", {"n": n}) for n in range(30)]
            audits = [await redis.xadd(keys.AUDIT_GENERAL, audit_entry("task.update", f"s-{n}")) for n in range(10)]
            await wait_until(lambda: "PostgreSQL unavailable" in drain.output(), 30, "the drain noticing")
            await wait_until(lambda: "PostgreSQL unavailable" in drain.output().split("PostgreSQL unavailable", 1)[1],
                             30, "the drain retrying")
            assert drain.proc.poll() is None
            assert (await redis.xpending(keys.stream("task.updated"), GROUP))["pending"] > 0
        finally:
            await asyncio.to_thread(_outage, db_name, False)

        expected = set(before) | set(during) | {f"{keys.AUDIT_GENERAL}/{a}" for a in audits}
        await wait_until(_count_is(len(expected)), 60, "every row after the outage")
        assert set(await rows()) == expected
        await wait_until(lambda: _pending_zero(redis), 10)
        assert await asyncio.to_thread(drain.stop) == 0
        assert await AuditEvent.objects.acount() == len(expected)  # exactly once
    finally:
        drain.close()


async def _pending_zero(redis) -> bool:
    total = 0
    for stream in (keys.stream("task.created"), keys.stream("task.updated"), keys.AUDIT_GENERAL):
        total += (await redis.xpending(stream, GROUP))["pending"]
    return total == 0
