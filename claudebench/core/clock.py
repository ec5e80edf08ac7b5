"""Time and id helpers: epoch milliseconds, ISO strings, event ids (SPEC conventions, §18.4)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_second: tuple[int, str] = (-1, "")


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with millisecond precision and a trailing Z: 2025-01-20T10:30:00.000Z.

    Several per request, mostly within one second of each other: the date and time part of the
    last second asked for is kept, so the common case is one string join."""
    global _second
    seconds, millis = divmod(ms, 1000)
    last, text = _second
    if seconds != last:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second = (seconds, text)
    return f"{text}.{millis:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dt_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def ms_from_dt(value: datetime) -> int:
    return int(value.timestamp() * 1000)


# Byte value -> base36 character (b % 36): random bytes become base36 text in one C call. 256 is
# not a multiple of 36, so '0'-'3' come up 8/256 of the time and the rest 7/256: 5.168 bits of
# entropy a character instead of 5.170, for ids that need to be unique, not secret.
_BYTE_TO_BASE36 = bytes(ord(_BASE36[b % 36]) for b in range(256))


def random_base36(length: int) -> str:
    # The module's generator is seeded from the OS at start and again in every forked child, and
    # costs no system call (several ids per request).
    return random.randbytes(length).translate(_BYTE_TO_BASE36).decode()


def event_id(ms: int | None = None) -> str:
    """`evt-<epoch-ms>-<9 base36>`: 46 bits of randomness per millisecond (SPEC §18.4)."""
    return f"evt-{now_ms() if ms is None else ms}-{random_base36(9)}"
