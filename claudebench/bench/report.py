"""The one table `manage.py bench` prints, as aligned text or as Markdown for the README."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

COLUMNS = ("id", "what", "clients", "req/s", "p50", "p99", "errors", "peak RSS",
           "ceiling", "ratio", "target", "result")  # fmt: skip
DASH = "—"


def fmt_rate(rate: float | None) -> str:
    return DASH if rate is None else f"{rate:,.0f}"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def fmt_bytes(n: int | None) -> str:
    return DASH if n is None else f"{n / 2**20:,.0f} MiB"


def fmt_ratio(ratio: float | None) -> str:
    return DASH if ratio is None else f"{ratio:.0%}"


@dataclass
class Row:
    id: str
    what: str
    clients: str
    rate: str = DASH
    p50: str = DASH
    p99: str = DASH
    errors: str = DASH
    rss: str = DASH
    ceiling: str = DASH
    ratio: str = DASH
    target: str = DASH
    result: str = ""

    def cells(self) -> tuple[str, ...]:
        return (self.id, self.what, self.clients, self.rate, self.p50, self.p99, self.errors, self.rss,
                self.ceiling, self.ratio, self.target, self.result)  # fmt: skip


_RIGHT = {2, 3, 4, 5, 6, 7, 9}  # numeric columns


def render_text(rows: list[Row]) -> str:
    table = [COLUMNS, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            c.rjust(w) if i in _RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(COLUMNS), rule, *(line(r.cells()) for r in rows)])


def render_markdown(rows: list[Row]) -> str:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = "|" + "|".join("---:" if i in _RIGHT else "---" for i in range(len(COLUMNS))) + "|"
    return "\n".join([line(COLUMNS), align, *(line(r.cells()) for r in rows)])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for text in f:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(*, workers: int, warmup_s: float, duration_s: float) -> str:
    """Date and machine, for the README's performance section (PERF.md)."""
    try:
        from importlib.metadata import version

        server = f"uvicorn {version('uvicorn')}"
    except Exception:
        server = "uvicorn"
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {_cpu_model()} × {os.cpu_count()} cores · "
        f"{platform.system()} · Python {sys.version.split()[0]} · {server} (uvloop, httptools), "
        f"{workers} worker(s) · warm-up {warmup_s:g} s, measure {duration_s:g} s"
    )
