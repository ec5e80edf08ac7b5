"""Pytest plugin: the embedded PostgreSQL and Valkey for a test session (STYLE.md §9).

In pytest_configure, before pytest-django creates the test database, start (or reuse) the embedded
server for each of DATABASE_URL and REDIS_URL that is unset; in pytest_unconfigure, stop only the
servers this session started, so a `make run` in another terminal keeps its servers. With both
variables set it does nothing. Under pytest-xdist the controller starts them first; each worker
then finds them running and leaves them alone.
"""

from __future__ import annotations

import os

import pytest

_STARTED = pytest.StashKey["object"]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.version:
        return
    want_postgres = not os.environ.get("DATABASE_URL")
    want_redis = not os.environ.get("REDIS_URL")
    if not (want_postgres or want_redis):
        return
    from claudebench import engines

    try:
        started = engines.ensure_started(postgres=want_postgres, redis=want_redis)
    except engines.EngineError as exc:
        raise pytest.UsageError(f"embedded servers for the tests: {exc}") from None
    config.stash[_STARTED] = started


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    started = config.stash.get(_STARTED, None)
    if started is None:
        return
    from claudebench import engines

    del config.stash[_STARTED]
    engines.stop(started)
