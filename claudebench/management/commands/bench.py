"""`manage.py bench`: the PERF.md benchmarks beside their ceilings, measured in one run, one table."""

from __future__ import annotations

import asyncio
import os
import sys

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from claudebench.bench import environment
from claudebench.bench.context import Context
from claudebench.bench.registry import BENCHMARKS, CEILINGS
from claudebench.bench.report import machine_line, render_markdown, render_text
from claudebench.bench.runner import UnknownId, build_report, execute, make_plan

WARMUP_S, DURATION_S = 5.0, 15.0  # PERF.md
QUICK_WARMUP_S, QUICK_DURATION_S = 1.0, 3.0


def _client_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise CommandError(f"--clients takes numbers separated by commas, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise CommandError("--clients needs at least one count, each at least 1")
    return counts


def _run(coro):
    """asyncio.run on uvloop when it is installed: the load generator is CPU-bound."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class Command(BaseCommand):
    help = (
        "Run PERF.md benchmarks (all, or the ids given) against a server the bench starts, or the "
        "one CB_URL names, beside ceilings measured in the same run; print one table."
    )
    requires_system_checks: list[str] = []  # the servers under test run their own checks

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "ids", nargs="*", help="benchmark or ceiling ids, e.g. B1 or C-asgi (default: all benchmarks)"
        )
        parser.add_argument(
            "--duration", type=float, help=f"seconds measured per client count (default {DURATION_S:g})"
        )
        parser.add_argument(
            "--warmup", type=float, help=f"seconds of warm-up per client count (default {WARMUP_S:g})"
        )
        parser.add_argument(
            "--clients",
            type=_client_counts,
            help="concurrent clients, e.g. 1,16,64 (default: each benchmark's own)",
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help=f"smoke run: warm up {QUICK_WARMUP_S:g} s, measure {QUICK_DURATION_S:g} s",
        )
        parser.add_argument(
            "--workers", type=int, help="uvicorn workers for every server (default CB_WEB_WORKERS)"
        )
        parser.add_argument("--format", choices=("text", "markdown"), default="text", help="table format")
        parser.add_argument("--list", action="store_true", help="list benchmarks and ceilings, then exit")

    def handle(self, *args: str, **opts) -> None:
        ids = opts["ids"]
        if opts["list"]:
            self._list()
            return
        warmup = (
            opts["warmup"] if opts["warmup"] is not None else (QUICK_WARMUP_S if opts["quick"] else WARMUP_S)
        )
        duration = (
            opts["duration"]
            if opts["duration"] is not None
            else (QUICK_DURATION_S if opts["quick"] else DURATION_S)
        )
        if warmup < 0 or duration <= 0:
            raise CommandError("--warmup must be ≥ 0 and --duration > 0")
        workers = opts["workers"] or settings.CB_WEB_WORKERS
        cb_url = os.environ.get("CB_URL") or None
        try:
            plan = make_plan(ids, clients=opts["clients"], cb_url=cb_url)
        except UnknownId as exc:
            raise CommandError(str(exc)) from None

        try:
            env = environment.prepare(plan.needs, self._say)
        except (environment.SetupFailed, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None
        try:
            ctx = Context(
                env=env, warmup_s=warmup, duration_s=duration, workers=workers, say=self._say, cb_url=cb_url
            )
            outcomes = _run(execute(plan, ctx))
        finally:
            environment.cleanup(env, self._say)

        report = build_report(plan, outcomes)
        render = render_markdown if opts["format"] == "markdown" else render_text
        self.stdout.write("")
        self.stdout.write(machine_line(workers=workers, warmup_s=warmup, duration_s=duration))
        self.stdout.write(render(report.rows))
        for note in report.notes:
            self.stdout.write(f"note: {note}")
        if report.failed:
            raise CommandError("some rows are FAIL or ERROR (see the table)")

    def _say(self, text: str) -> None:
        """Progress goes to stderr, so stdout carries only the table."""
        print(text, file=sys.stderr, flush=True)

    def _list(self) -> None:
        from claudebench.bench import registry

        registry.load()
        for bench in BENCHMARKS.values():
            self.stdout.write(
                f"{bench.id:<16} {bench.what} · clients {','.join(map(str, bench.clients))} · "
                f"target {bench.target.text} vs {', '.join(bench.compares_to)}"
            )
        for ceiling in CEILINGS.values():
            self.stdout.write(f"{ceiling.id:<16} {ceiling.what}")
