"""One measured series (a client count against one server) and the figures drawn from it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence; None when it is empty."""
    if not sorted_values:
        return None
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass
class Measurement:
    """What one load run produced.

    `ok` counts successes inside the measure window (their latencies are in `latencies_s`);
    `errors` counts failures in the warm-up and the measure window alike, since PERF.md wants 0.
    `unit` names what was counted: "req" for HTTP requests, "ev" for events.
    """

    clients: int
    ok: int
    errors: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list, repr=False)
    peak_rss_bytes: int | None = None
    first_error: str | None = None
    unit: str = "req"
    label: str = ""  # shown after the client count, e.g. "pipeline 100"
    spread: tuple[int, ...] | None = None  # connections held by each server worker

    def __post_init__(self) -> None:
        self.latencies_s.sort()

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50_s(self) -> float | None:
        return percentile(self.latencies_s, 50)

    @property
    def p99_s(self) -> float | None:
        return percentile(self.latencies_s, 99)

    def summary(self) -> str:
        """One progress line: rate, p50, p99, errors."""
        from claudebench.bench.report import fmt_ms, fmt_rate

        spread = f"  (connections per worker {'+'.join(map(str, self.spread))})" if self.spread else ""
        return (
            f"{fmt_rate(self.rate)} {self.unit}/s  p50 {fmt_ms(self.p50_s)}  p99 {fmt_ms(self.p99_s)}"
            f"  errors {self.errors}{spread}"
        )
