"""The shapes of a ceiling and a benchmark, and the ordered registries that hold them.

A ceiling is the best a bare stack can do on this machine, measured in the same run; a benchmark
measures the product and states its target as a ratio to one or more ceilings (PERF.md). Adding a
benchmark is one `register_benchmark(Benchmark(...))` entry in benchmarks.py with its measure
function; the runner measures the ceilings it names at the same client counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from claudebench.bench.stats import Measurement

if TYPE_CHECKING:
    from claudebench.bench.context import Context

# measure(ctx, client_counts) -> one Measurement per client count, in that order.
MeasureFn = Callable[["Context", Sequence[int]], Awaitable[list[Measurement]]]


@dataclass(frozen=True)
class Ceiling:
    id: str
    what: str
    measure: MeasureFn
    needs: frozenset[str] = frozenset()
    # Fixed client counts (an in-process ceiling with one figure); None: the counts asked for.
    clients: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Target:
    """A benchmark's target: `check(measurement, ceilings_by_id)` at the client counts it covers."""

    text: str
    check: Callable[[Measurement, Mapping[str, Measurement]], bool]
    clients: frozenset[int] | None = None  # None: every client count


@dataclass(frozen=True)
class Benchmark:
    id: str
    what: str
    compares_to: tuple[str, ...]  # ceiling ids; the first one fills the table's ceiling column
    target: Target
    measure: MeasureFn
    clients: tuple[int, ...] = (1,)
    needs: frozenset[str] = frozenset()
    context: tuple[str, ...] = ()  # further ceilings measured alongside, for reference only


CEILINGS: dict[str, Ceiling] = {}
BENCHMARKS: dict[str, Benchmark] = {}


def register_ceiling(ceiling: Ceiling) -> Ceiling:
    if ceiling.id in CEILINGS:
        raise ValueError(f"ceiling {ceiling.id} registered twice")
    CEILINGS[ceiling.id] = ceiling
    return ceiling


def register_benchmark(bench: Benchmark) -> Benchmark:
    if bench.id in BENCHMARKS:
        raise ValueError(f"benchmark {bench.id} registered twice")
    missing = [c for c in (*bench.compares_to, *bench.context) if c not in CEILINGS]
    if missing:
        raise ValueError(f"benchmark {bench.id} names unknown ceilings: {', '.join(missing)}")
    BENCHMARKS[bench.id] = bench
    return bench


def load() -> None:
    """Import the entry modules, which fill the registries (benchmarks import the ceilings first)."""
    from claudebench.bench import benchmarks  # noqa: F401
