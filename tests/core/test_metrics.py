"""Metrics (SPEC §2.4.4, §3.5, §3.9, §3.12): Prometheus text at GET /metrics, Redis counters, and
the snapshot system.metrics reads."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from claudebench.core import keys, metrics
from claudebench.core.errors import CbError

pytestmark = pytest.mark.django_db(transaction=True)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def _scrape(client) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


async def test_metrics_parse_and_count_what_was_called(circuit_on, call, client, settle):
    calls = ("claudebench_handler_calls_total", (("handler", "test.circuit"), ("outcome", "success")))
    fails = ("claudebench_handler_calls_total", (("handler", "test.circuit"), ("outcome", "failure")))
    latency = ("claudebench_handler_duration_seconds_count", (("handler", "test.circuit"),))
    before = await _scrape(client)
    for _ in range(3):
        await call("test.circuit", {})
    for _ in range(2):
        with pytest.raises(CbError):
            await call("test.circuit", {"shouldFail": True})
    await settle()
    after = await _scrape(client)
    assert after[calls] - before.get(calls, 0) == 3
    assert after[fails] - before.get(fails, 0) == 2
    assert after[latency] - before.get(latency, 0) == 5
    errors = ("claudebench_handler_errors_total", (("code", "-32603"), ("handler", "test.circuit")))
    assert after[errors] - before.get(errors, 0) == 2
    # cluster values from Redis (flushed per test, so exact)
    assert after[("claudebench_circuit_breaker_state", (("handler", "test.circuit"),))] == 0
    counter = ("claudebench_pipeline_counter", (("handler", "test.circuit"), ("layer", "circuit"), ("outcome", "success")))
    assert after[counter] == 3
    assert after[("claudebench_domain_calls", (("domain", "test"), ("outcome", "failure")))] == 2
    assert after[("claudebench_cluster_handler_calls", (("handler", "test.circuit"),))] == 5


async def test_open_breaker_shows_in_metrics_and_handlers(circuit_on, limits, call, client, settle):
    limits("test.circuit", trip_after=1, open_ms=60_000)
    with pytest.raises(CbError):
        await call("test.circuit", {"shouldFail": True})
    await settle()
    after = await _scrape(client)
    assert after[("claudebench_circuit_breaker_state", (("handler", "test.circuit"),))] == 1
    doc = (await client.get("/handlers")).json()
    entry = next(h for h in doc["handlers"] if h["event"] == "test.circuit")
    assert entry["circuitState"] == "OPEN"
    assert entry["enforced"]["rateLimit"] == 100


async def test_snapshot_for_system_metrics(circuit_on, limits, call, redis, settle):
    limits("test.circuit", rate=3)
    for _ in range(3):
        await call("test.circuit", {}, session_id="m")
    with pytest.raises(CbError):
        await call("test.circuit", {}, session_id="m")       # rate-limited: counted, not run
    await settle()
    snap = await metrics.snapshot(redis)
    h = snap["handlers"]["test.circuit"]
    assert (h["totalCalls"], h["successCount"], h["errorCount"]) == (3, 3, 0)
    assert h["circuitState"] == "CLOSED"
    assert h["rateLimitHits"] == 1
    assert h["lastCalled"].endswith("Z")
    assert snap["counters"]["ratelimit:test.circuit:allowed"] == "3"
    assert snap["current"]["events:total"] == "3"
    assert await redis.ttl(keys.METRICS_CURRENT) > 0


def test_supervisor_gives_web_workers_an_empty_prometheus_dir(monkeypatch, tmp_path):
    from claudebench import embedded
    from claudebench.management.commands.up import Command

    monkeypatch.setattr(embedded, "DATA_DIR", tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "counter_123.db").write_bytes(b"old run")
    env = Command.child_env(())
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "prometheus")
    assert list((tmp_path / "prometheus").iterdir()) == []
