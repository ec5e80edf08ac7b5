"""The event bus facade (SPEC §14.4): `get_bus()` returns the adapter chosen by EVENT_BUS_ADAPTER.

    from events.bus import get_bus
    bus = get_bus()
    await bus.publish("task.created", {...}, correlation_id=cid)
    bus.subscribe("task.*", on_task, use_dlq=True, max_retries=3)      # durable: run by consume_streams
    await bus.replay("task.created", after="1732560000000-0")

`redis` (the default) writes the wire format of SPEC §4 and leaves delivery to `manage.py
consume_streams`; `memory` keeps everything in this process (unit tests, single-process use).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from events.memory_bus import MemoryBus
from events.redis_bus import RedisBus

_memory: MemoryBus | None = None


def get_bus() -> RedisBus | MemoryBus:
    global _memory
    adapter = settings.EVENT_BUS_ADAPTER
    if adapter == "redis":
        return RedisBus()
    if adapter == "memory":
        if _memory is None:
            _memory = MemoryBus()
        return _memory
    raise ImproperlyConfigured(f"EVENT_BUS_ADAPTER must be 'redis' or 'memory', not {adapter!r}")


def reset_memory_bus() -> None:
    """Forget the process's memory bus (tests)."""
    global _memory
    _memory = None
