"""Plan a bench run, measure it, and turn the measurements into the report's rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from claudebench.bench import registry
from claudebench.bench.context import Context
from claudebench.bench.environment import MIGRATIONS
from claudebench.bench.registry import BENCHMARKS, CEILINGS, MeasureFn
from claudebench.bench.report import DASH, Row, fmt_bytes, fmt_ms, fmt_rate, fmt_ratio
from claudebench.bench.stats import Measurement

DEFAULT_CLIENTS = (1, 16, 64)  # for a ceiling run on its own


class UnknownId(ValueError):
    pass


@dataclass
class Plan:
    ceilings: dict[str, tuple[int, ...]]  # registry order
    benchmarks: dict[str, tuple[int, ...]]
    needs: frozenset[str]


def make_plan(ids: Sequence[str], *, clients: Sequence[int] | None = None, cb_url: str | None = None) -> Plan:
    """Benchmarks (all when `ids` is empty) and ceilings asked for, plus the ceilings they name."""
    registry.load()
    asked: dict[str, set[int]] = {}
    benchmarks: dict[str, tuple[int, ...]] = {}
    for name in ids or list(BENCHMARKS):
        if name in BENCHMARKS:
            bench = BENCHMARKS[name]
            counts = tuple(clients or bench.clients)
            benchmarks[name] = counts
            for cid in (*bench.compares_to, *bench.context):
                asked.setdefault(cid, set()).update(counts)
        elif name in CEILINGS:
            asked.setdefault(name, set()).update(clients or DEFAULT_CLIENTS)
        else:
            known = ", ".join([*BENCHMARKS, *CEILINGS])
            raise UnknownId(f"unknown benchmark or ceiling {name!r} (known: {known})")
    ceilings = {cid: c.clients or tuple(sorted(asked[cid])) for cid, c in CEILINGS.items() if cid in asked}
    needs: set[str] = set()
    for cid in ceilings:
        needs |= CEILINGS[cid].needs
    for bid in benchmarks:
        needs |= BENCHMARKS[bid].needs
    if cb_url:
        needs.discard(MIGRATIONS)  # migrations are for a product server the bench starts itself
    ordered = {bid: benchmarks[bid] for bid in BENCHMARKS if bid in benchmarks}
    return Plan(ceilings=ceilings, benchmarks=ordered, needs=frozenset(needs))


@dataclass
class Outcome:
    measurements: list[Measurement] = field(default_factory=list)
    failure: str | None = None


async def _measure(ctx: Context, ident: str, fn: MeasureFn, clients: tuple[int, ...], into: Outcome) -> None:
    try:
        into.measurements.extend(await fn(ctx, clients))
    except Exception as exc:  # one broken subject must not hide the others' figures
        ctx.say(f"  {ident} failed: {type(exc).__name__}: {exc}")
        into.failure = f"{type(exc).__name__}: {exc}"


def _order(plan: Plan) -> list[tuple[str, str, MeasureFn, tuple[int, ...]]]:
    """Subjects in running order: reference ceilings, compared ceilings, then benchmarks."""
    compared = {cid for bid in plan.benchmarks for cid in BENCHMARKS[bid].compares_to}
    ceilings = sorted(plan.ceilings, key=lambda cid: cid in compared)  # stable: registry order kept
    subjects = [(cid, CEILINGS[cid].what, CEILINGS[cid].measure, plan.ceilings[cid]) for cid in ceilings]
    subjects += [
        (bid, b.what, b.measure, plan.benchmarks[bid])
        for bid, b in BENCHMARKS.items()
        if bid in plan.benchmarks
    ]
    return subjects


async def execute(plan: Plan, ctx: Context) -> dict[str, Outcome]:
    """Measure every subject, one at a time, interleaved by client count.

    Shared machines drift over minutes, so each client count is measured for all subjects in
    turn (a ceiling right before the benchmark compared with it) rather than subject by subject;
    each subject's server is started afresh for each count. Ceilings with fixed client counts
    (in-process ones) are measured once, first.
    """
    subjects = _order(plan)
    outcomes = {ident: Outcome() for ident, *_ in subjects}
    fixed = {cid for cid in plan.ceilings if CEILINGS[cid].clients is not None}
    for ident, what, fn, counts in subjects:
        if ident in fixed:
            ctx.say(f"{ident}: {what}")
            await _measure(ctx, ident, fn, counts, outcomes[ident])
    levels = sorted({n for ident, _, _, counts in subjects if ident not in fixed for n in counts})
    for n in levels:
        ctx.say(f"-- {n} client(s)")
        for ident, what, fn, counts in subjects:
            if ident in fixed or n not in counts or outcomes[ident].failure:
                continue
            ctx.say(f"{ident}: {what}")
            await _measure(ctx, ident, fn, (n,), outcomes[ident])
    return outcomes


def ceiling_at(cid: str, outcome: Outcome | None, clients: int) -> Measurement | None:
    """The ceiling's figure at `clients`; a ceiling with fixed client counts has one figure for all."""
    if outcome is None or not outcome.measurements:
        return None
    if CEILINGS[cid].clients is not None:
        return outcome.measurements[0]
    return next((m for m in outcome.measurements if m.clients == clients), None)


def _figures(row: Row, m: Measurement) -> Row:
    row.rate = fmt_rate(m.rate) if m.unit == "req" else f"{fmt_rate(m.rate)} {m.unit}"
    row.p50, row.p99 = fmt_ms(m.p50_s), fmt_ms(m.p99_s)
    row.errors = str(m.errors)
    row.rss = fmt_bytes(m.peak_rss_bytes)
    return row


def _clients(m: Measurement) -> str:
    return f"{m.clients} ({m.label})" if m.label else str(m.clients)


@dataclass
class Report:
    rows: list[Row]
    notes: list[str]

    @property
    def failed(self) -> bool:
        return any(r.result in ("FAIL", "ERROR") for r in self.rows)


def _subject_rows(
    ident: str, what: str, outcome: Outcome, notes: list[str]
) -> list[tuple[Row, Measurement | None]]:
    """A row per measurement, and an ERROR row when the subject failed (at some client count)."""
    pairs: list[tuple[Row, Measurement | None]] = []
    for m in outcome.measurements:
        if m.first_error:
            notes.append(f"{ident} at {m.clients} client(s), first error: {m.first_error}")
        pairs.append((_figures(Row(ident, what, _clients(m)), m), m))
    if outcome.failure:
        notes.append(f"{ident}: {outcome.failure}")
        pairs.append((Row(ident, what, DASH, result="ERROR"), None))
    return pairs


def _judge(
    row: Row, m: Measurement, bench: registry.Benchmark, ceilings: Mapping[str, Measurement | None]
) -> None:
    main = ceilings[bench.compares_to[0]]
    if main is not None:
        row.ceiling = f"{bench.compares_to[0]} {fmt_rate(main.rate)}/s, p99 {fmt_ms(main.p99_s)}"
        row.ratio = fmt_ratio(m.rate / main.rate) if main.rate else DASH
    applies = bench.target.clients is None or m.clients in bench.target.clients
    row.target = bench.target.text if applies else "reported"
    if m.errors:
        row.result = "FAIL"  # PERF.md: errors must be 0
    elif not applies:
        row.result = DASH
    elif any(c is None for c in ceilings.values()):
        row.result = DASH  # no ceiling to compare with
    else:
        known = {cid: c for cid, c in ceilings.items() if c is not None}
        row.result = "PASS" if bench.target.check(m, known) else "FAIL"


def build_report(plan: Plan, outcomes: Mapping[str, Outcome]) -> Report:
    rows: list[Row] = []
    notes: list[str] = []
    for cid in plan.ceilings:
        ceiling = CEILINGS[cid]
        rows.extend(row for row, _ in _subject_rows(cid, ceiling.what, outcomes[cid], notes))
    for bid in plan.benchmarks:
        bench, outcome = BENCHMARKS[bid], outcomes[bid]
        for row, m in _subject_rows(bid, bench.what, outcome, notes):
            if m is not None:
                ceilings = {cid: ceiling_at(cid, outcomes.get(cid), m.clients) for cid in bench.compares_to}
                _judge(row, m, bench, ceilings)
            rows.append(row)
    return Report(rows=rows, notes=notes)
