"""Fixtures shared by the task handler tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.factories import register_instance, task_tables  # noqa: F401  (task_tables: fixture)


@pytest.fixture
def new_task(call) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create a task through task.create and return its answer."""

    async def _new(text: str = "a task", priority: int = 50, **extra: Any) -> dict[str, Any]:
        return await call("task.create", {"text": text, "priority": priority, **extra})

    return _new


@pytest.fixture
def instance(redis) -> Callable[..., Awaitable[str]]:
    """Register an instance the way SPEC §6.4 lays out its hash; returns its id."""

    async def _instance(instance_id: str = "w-1", **fields: Any) -> str:
        await register_instance(redis, instance_id, **fields)
        return instance_id

    return _instance


@pytest.fixture
def assigned_task(call, new_task, instance) -> Callable[..., Awaitable[tuple[str, str]]]:
    """A task assigned (task.assign) to a registered instance: returns (task id, instance id)."""

    async def _assigned(instance_id: str = "w-1", text: str = "assigned task", priority: int = 50) -> tuple[str, str]:
        task = await new_task(text, priority)
        await instance(instance_id)
        await call("task.assign", {"taskId": task["id"], "instanceId": instance_id})
        return task["id"], instance_id

    return _assigned
