"""Fixtures of the transport tests."""

from tests.factories import task_tables  # noqa: F401  (fixture)
