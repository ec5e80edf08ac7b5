"""Event-type patterns (SPEC §2.6.2, §14.4): exact name, `*`, or `prefix.*`.

`task.*` matches every type that starts with `task.` (task.created, task.attachment.deleted) and
nothing else: not `task` itself, not `tasks.created`. No other wildcard form exists.
"""

from __future__ import annotations

from collections.abc import Iterable


def valid(pattern: str) -> bool:
    """A pattern is a non-empty name, `*`, or a name followed by `.*`; no other `*`."""
    if pattern == "*":
        return True
    body = pattern[:-2] if pattern.endswith(".*") else pattern
    return bool(body) and "*" not in body


def matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def any_match(patterns: Iterable[str], event_type: str) -> bool:
    return any(matches(p, event_type) for p in patterns)


def exact_types(patterns: Iterable[str]) -> list[str]:
    """The patterns that name one type exactly (their streams can be created up front)."""
    return [p for p in patterns if p != "*" and not p.endswith(".*")]
