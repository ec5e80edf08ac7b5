"""hook.todo_write and Claude Code's task tools → tasks (SPEC §10.5, §9.5)."""

from __future__ import annotations

import pytest

from claudebench.core import keys
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

SESSION = "sess-todo-1"


def todo(content, status, active=None):
    item = {"content": content, "status": status}
    if active:
        item["activeForm"] = active
    return item


async def write(call, todos, session=SESSION, instance="claude-code-sess-tod"):
    return await call("hook.todo_write", {"todos": todos, "sessionId": session, "instanceId": instance,
                                          "timestamp": 1694462400000})


async def statuses() -> dict[str, str]:
    return {t.text: t.status async for t in Task.objects.all()}


async def test_a_list_creates_tasks_once_however_often_it_is_sent(call, redis, stream_events):
    todos = [todo("Implement authentication", "pending", "Implementing authentication"),
             todo("Write unit tests", "in_progress", "Writing unit tests"),
             todo("Setup database", "completed")]
    out = await write(call, todos)
    assert out == {"processed": True, "summary": {"added": 3, "completed": 0, "modified": 0}}
    assert await statuses() == {"Implement authentication": "pending", "Write unit tests": "in_progress"}
    for _ in range(3):
        assert (await write(call, todos))["summary"] == {"added": 0, "completed": 0, "modified": 0}
    assert await Task.objects.acount() == 2
    row = await Task.objects.aget(text="Write unit tests")
    assert row.priority == 75 and row.metadata["source"] == "todo_write" and row.metadata["sessionId"] == SESSION
    events = await stream_events("hook.todo_write.executed")
    assert events[0]["payload"]["changes"] == {"added": 3, "completed": 0, "modified": 0}
    assert events[0]["payload"]["stats"]["total"] == 3
    assert events[0]["payload"]["todos"] == todos


async def test_status_changes_update_and_complete_the_mapped_tasks(call, redis):
    await write(call, [todo("A", "pending"), todo("B", "in_progress")])
    out = await write(call, [todo("A", "in_progress"), todo("B", "completed")])
    assert out["summary"] == {"added": 0, "completed": 1, "modified": 2}
    assert await statuses() == {"A": "in_progress", "B": "completed"}
    out = await write(call, [todo("A", "completed"), todo("B", "completed")])
    assert await statuses() == {"A": "completed", "B": "completed"}
    assert await Task.objects.acount() == 2
    assert await redis.get(keys.TODOS_CLEANUP) == "scheduled"


async def test_another_session_reuses_a_pending_task_instead_of_duplicating_it(call, redis):
    # i-b is already known (not as a worker, so its registration is not offered pending tasks).
    await call("system.register", {"id": "i-b", "roles": ["claude-code"]})
    await write(call, [todo("Shared work", "pending")], session="s-a", instance="i-a")
    await write(call, [todo("Shared work", "pending")], session="s-b", instance="i-b")
    assert await Task.objects.acount() == 1


async def test_autocreate_off_creates_nothing(call, redis):
    await call("config.set", {"key": "todowrite.autocreate", "value": False})
    await write(call, [todo("Not a task", "pending")])
    assert await Task.objects.acount() == 0
    await call("config.set", {"key": "todowrite.autocreate", "value": True})
    await write(call, [todo("Now a task", "pending")])
    assert await statuses() == {"Now a task": "pending"}


async def test_invalid_todo_is_refused_and_nothing_stored(call, redis):
    from claudebench.core.errors import InvalidParams

    with pytest.raises(InvalidParams):
        await write(call, [{"content": "x", "status": "done"}])
    assert await redis.get(keys.todos_current("claude-code-sess-tod")) is None
    assert await Task.objects.acount() == 0


async def post_tool(call, tool, params, result, session=SESSION):
    return await call("hook.post_tool", {"tool": tool, "params": params, "result": result, "sessionId": session,
                                         "instanceId": "claude-code-sess-tod"})


async def test_task_create_and_update_tools_sync_by_claude_task_id(call, redis):
    out = await post_tool(call, "TaskCreate", {"subject": "Run tests", "description": "all of them",
                                               "activeForm": "Running tests"},
                          {"task": {"id": "1", "subject": "Run tests"}})
    task_id = out["processed"]["taskId"]
    # The TaskCreated hook event for the same task does not make a second one.
    await post_tool(call, "TaskCreated", {"task_id": "1", "task_subject": "Run tests"}, None)
    assert await Task.objects.acount() == 1
    row = await Task.objects.aget(id=task_id)
    assert row.metadata["claudeTaskId"] == "1" and row.metadata["description"] == "all of them"
    await post_tool(call, "TaskUpdate", {"taskId": "1", "status": "in_progress"}, {"success": True})
    assert await statuses() == {"Run tests": "in_progress"}
    await post_tool(call, "TaskUpdate", {"taskId": "1", "status": "completed"}, {"success": True})
    assert await statuses() == {"Run tests": "completed"}
    # Same Claude id in another session is another task list.
    await post_tool(call, "TaskCreate", {"subject": "Other"}, {"task": {"id": "1", "subject": "Other"}},
                    session="other")
    assert await Task.objects.acount() == 2


async def test_task_completed_event_and_deletion(call, redis):
    await post_tool(call, "TaskCreated", {"task_id": "7", "task_subject": "Ship it"}, None)
    await post_tool(call, "TaskCompleted", {"task_id": "7", "task_subject": "Ship it"}, None)
    assert await statuses() == {"Ship it": "completed"}
    await post_tool(call, "TaskCreate", {"subject": "Scratch"}, {"task": {"id": "8", "subject": "Scratch"}})
    await post_tool(call, "TaskUpdate", {"taskId": "8", "status": "deleted"}, {"success": True})
    assert await statuses() == {"Ship it": "completed"}
    assert await redis.hget(keys.claude_task_mapping(SESSION), "8") is None
