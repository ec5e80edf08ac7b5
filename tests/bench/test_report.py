"""Planning a run, judging targets against ceilings, and the table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from claudebench.bench.context import Context
from claudebench.bench.registry import CEILINGS
from claudebench.bench.report import render_markdown, render_text
from claudebench.bench.runner import Outcome, UnknownId, _order, build_report, execute, make_plan
from claudebench.bench.stats import Measurement


def _m(clients: int, rate: float, p99_ms: float, errors: int = 0) -> Measurement:
    # 100 samples at p99_ms, so p50 == p99 == p99_ms; ok = rate * 10 s.
    return Measurement(clients=clients, ok=int(rate * 10), errors=errors, seconds=10.0,
                       latencies_s=[p99_ms / 1000] * 100)  # fmt: skip


def test_plan_for_b1_measures_its_ceilings_at_its_client_counts():
    plan = make_plan(["B1"])
    assert plan.benchmarks == {"B1": (1, 16, 64)}
    assert plan.ceilings["C-asgi-redis-pg"] == (1, 16, 64)
    assert "migrations" in plan.needs


def test_plan_honours_client_override_and_cb_url():
    plan = make_plan(["B1"], clients=[8], cb_url="http://127.0.0.1:3000")
    assert plan.benchmarks == {"B1": (8,)}
    assert set(plan.ceilings.values()) == {(8,)}
    assert "migrations" not in plan.needs


def test_a_ceiling_runs_alone_and_fixed_ceilings_keep_their_counts():
    plan = make_plan(["C-asgi", "C-xadd"])
    assert plan.benchmarks == {}
    assert plan.ceilings == {"C-asgi": (1, 16, 64), "C-xadd": (1,)}


def test_unknown_id_names_the_known_ones():
    with pytest.raises(UnknownId, match="B1"):
        make_plan(["B99"])


def _b1_report(b1: list[Measurement], ceiling: list[Measurement]):
    plan = make_plan(["B1"])
    outcomes = {cid: Outcome(measurements=ceiling) for cid in plan.ceilings}
    outcomes["B1"] = Outcome(measurements=b1)
    return build_report(plan, outcomes)


def test_b1_passes_fails_or_is_only_reported():
    ceiling = [_m(1, 1000, 2), _m(16, 2000, 10), _m(64, 2000, 40)]
    report = _b1_report([_m(1, 100, 9), _m(16, 1300, 15), _m(64, 1100, 90)], ceiling)
    b1 = {row.clients: row for row in report.rows if row.id == "B1"}
    assert b1["1"].result == "—" and b1["1"].target == "reported"
    assert b1["16"].result == "PASS"  # 65% and p99 1.5×
    assert b1["64"].result == "FAIL"  # 55%, p99 2.25×
    assert b1["16"].ratio == "65%"
    assert report.failed


def test_errors_fail_a_row_and_the_first_error_is_noted():
    ceiling = [_m(16, 2000, 10)]
    broken = _m(16, 1900, 10, errors=3)
    broken.first_error = "HTTP 500: boom"
    report = _b1_report([broken], ceiling)
    assert [r.result for r in report.rows if r.id == "B1"] == ["FAIL"]
    assert any("HTTP 500: boom" in note for note in report.notes)


def test_a_failed_subject_is_an_error_row():
    plan = make_plan(["C-asgi"])
    report = build_report(plan, {"C-asgi": Outcome(failure="ServerFailed: exited")})
    assert [r.result for r in report.rows] == ["ERROR"]
    assert report.failed


def test_tables_have_one_line_per_row_and_every_column():
    report = _b1_report([_m(16, 1300, 15)], [_m(16, 2000, 10)])
    text = render_text(report.rows).splitlines()
    assert text[0].split()[:3] == ["id", "what", "clients"]
    assert len(text) == 2 + len(report.rows)
    markdown = render_markdown(report.rows).splitlines()
    assert markdown[0].startswith("| id | what | clients | req/s |")
    assert all(line.count("|") == markdown[0].count("|") for line in markdown)


def test_the_compared_ceiling_runs_right_before_its_benchmark():
    order = [ident for ident, *_ in _order(make_plan(["B1"]))]
    assert order[-2:] == ["C-asgi-redis-pg", "B1"]


async def test_execute_interleaves_client_counts_and_keeps_going_after_a_failure(monkeypatch):
    calls: list[tuple[str, tuple[int, ...]]] = []

    def fake(ident: str, *, fail_at: int | None = None):
        async def measure(ctx, clients):
            calls.append((ident, tuple(clients)))
            if clients[0] == fail_at:
                raise RuntimeError("server exited")
            return [_m(n, 100, 1) for n in clients]

        return measure

    monkeypatch.setitem(CEILINGS, "C-asgi", replace(CEILINGS["C-asgi"], measure=fake("C-asgi", fail_at=2)))
    monkeypatch.setitem(CEILINGS, "C-xadd", replace(CEILINGS["C-xadd"], measure=fake("C-xadd")))
    plan = make_plan(["C-asgi", "C-xadd"], clients=[1, 2, 4])
    ctx = Context(env=None, warmup_s=0, duration_s=1, workers=1, say=lambda _: None)  # type: ignore[arg-type]
    outcomes = await execute(plan, ctx)
    assert calls == [("C-xadd", (1,)), ("C-asgi", (1,)), ("C-asgi", (2,))]
    assert [m.clients for m in outcomes["C-asgi"].measurements] == [1]
    report = build_report(plan, outcomes)
    assert [(r.id, r.clients, r.result) for r in report.rows if r.id == "C-asgi"] == [
        ("C-asgi", "1", ""),
        ("C-asgi", "—", "ERROR"),
    ]
