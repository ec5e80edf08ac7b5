"""The benchmark harness of PERF.md: ceilings, benchmarks, a load generator and one report table.

`manage.py bench` is the entry point (claudebench/management/commands/bench.py). A benchmark or a
ceiling is one entry in `benchmarks.py` or `ceilings.py`; `registry.py` holds the shapes, and
`runner.py` measures what was asked for and builds the table (`report.py`).

Keep this module free of imports: uvicorn imports `claudebench.bench.ceiling_app` in each worker,
and that must stay a bare ASGI app.
"""
