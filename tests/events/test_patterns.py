"""Pattern matching of subscriptions (SPEC §2.6.2, §14.4): exact, `*`, `prefix.*`, nothing else."""

import pytest

from events import patterns
from events.subscriptions import build


async def _noop(event):
    return None


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("task.created", "task.created", True),
        ("task.created", "task.created.v2", False),
        ("task.created", "task.create", False),
        ("*", "task.created", True),
        ("*", "hook.pre_tool.executed", True),
        ("task.*", "task.created", True),
        ("task.*", "task.attachment.deleted", True),
        ("task.*", "task", False),
        ("task.*", "tasks.created", False),
        ("task.*", "swarm.task.created", False),
        ("hook.*", "hook.pre_tool.executed", True),
        ("task.attachment.*", "task.attachment.deleted", True),
        ("task.attachment.*", "task.attachment_created", False),
    ],
)
def test_matching_follows_the_spec(pattern, event_type, expected):
    assert patterns.matches(pattern, event_type) is expected


@pytest.mark.parametrize("bad", ["", "task*", "*.created", "task.*.done", "**", ".*"])
def test_other_wildcards_are_refused(bad):
    assert not patterns.valid(bad)
    with pytest.raises(ValueError, match="invalid event pattern"):
        build(bad, _noop, name="x")


def test_subscription_streams_exclude_session_streams():
    sub = build("*", _noop, name="all")
    assert sub.wants_stream("cb:stream:task.created")
    assert sub.wants_stream("cb:stream:session.rehydrated")  # an event type, not a session stream
    assert not sub.wants_stream("cb:stream:session:abc")
    assert not sub.wants_stream("cb:audit:general")  # audit streams only when asked for


def test_subscription_with_audit_source_reads_audit_streams():
    sub = build("*", _noop, name="drain", sources=("cb:stream:*", "cb:audit:*"))
    assert sub.wants_stream("cb:audit:general")
    assert sub.wants_stream("cb:audit:tools:pre_tool")
    assert not sub.wants_stream("cb:dlq:task.created")


def test_backoff_doubles():
    sub = build("task.*", _noop, name="b", retry_delay_ms=100)
    assert [sub.delay_ms(n) for n in (1, 2, 3)] == [100, 200, 400]
    assert build("task.*", _noop, name="f", retry_delay_ms=100, backoff="fixed").delay_ms(3) == 100


def test_default_subscription_name_is_stable_across_processes():
    first = build("task.*", _noop)
    assert first.name == "tests.events.test_patterns._noop" and first.group == "cb:tests.events.test_patterns._noop"
    assert build("task.*", _noop).name == first.name  # no per-process counter: same group after a restart

    async def local(event):
        return None

    assert build("task.*", local).name.endswith("test_default_subscription_name_is_stable_across_processes._locals_.local")
