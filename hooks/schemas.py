"""Input and output models of the hook and session handlers (SPEC §5.3.2, §5.3.5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from claudebench.core.schema import Out, Schema, opt

Id = Annotated[str, Field(min_length=1)]
Number = int | float
TodoStatus = Literal["pending", "in_progress", "completed"]


def _or(default: str, allowed: tuple[str, ...]):
    """Claude Code sends kinds the original's enums never knew (`notification_type` such as
    "permission_prompt", `subagent_type` such as "Explore"); the original's bridge forwards them
    as they are. A string outside the enum reads as `default`, so those hooks do not fail."""
    return BeforeValidator(lambda v: default if isinstance(v, str) and v not in allowed else v)


AgentType = Annotated[Literal["main", "subagent", "unknown"], _or("unknown", ("main", "subagent", "unknown"))]
NotificationType = Annotated[Literal["info", "warning", "error", "success"],
                             _or("info", ("info", "warning", "error", "success"))]

# As in tasks/schemas.py: a field typed `X` with default None may be absent, never an explicit null.


class Todo(Schema):
    content: Id
    status: TodoStatus
    active_form: Id = None  # type: ignore[assignment]


class PreToolIn(Schema):
    tool: Id
    params: Any  # the key is required; its value may be anything, null included
    session_id: str = None  # type: ignore[assignment]
    instance_id: str = None  # type: ignore[assignment]
    timestamp: Number = None  # type: ignore[assignment]
    metadata: dict[str, Any] = None  # type: ignore[assignment]


class DecisionMetadata(Out):
    severity: str
    rule_matched: str


class PreToolOut(Out):
    allow: bool
    reason: str | None = opt()
    modified: Any = opt()
    warnings: list[str] | None = opt()
    metadata: DecisionMetadata | None = opt()


class PostToolIn(Schema):
    tool: Id
    params: Any = None
    result: Any
    session_id: str = None  # type: ignore[assignment]
    instance_id: str = None  # type: ignore[assignment]
    timestamp: Number = None  # type: ignore[assignment]
    execution_time: Number = None  # type: ignore[assignment]
    success: bool = None  # type: ignore[assignment]


class PostToolOut(Out):
    processed: Any


class UserPromptIn(Schema):
    prompt: Id
    context: dict[str, Any]
    session_id: str = None  # type: ignore[assignment]
    instance_id: str = None  # type: ignore[assignment]
    timestamp: Number = None  # type: ignore[assignment]


class UserPromptOut(Out):
    modified: str | None = opt()


class TodoWriteIn(Schema):
    todos: list[Todo]
    session_id: str = None  # type: ignore[assignment]
    instance_id: str = None  # type: ignore[assignment]
    timestamp: Number = None  # type: ignore[assignment]
    previous_todos: list[Todo] = None  # type: ignore[assignment]


class TodoSummary(Out):
    added: int
    completed: int
    modified: int


class TodoWriteOut(Out):
    processed: Literal[True]
    summary: TodoSummary | None = opt()


class AgentStopIn(Schema):
    instance_id: Id
    session_id: Id
    agent_type: AgentType
    timestamp: Number


class AgentStopOut(Out):
    acknowledged: Literal[True]
    cleaned_up: bool


class NotificationIn(Schema):
    message: str
    type: NotificationType
    session_id: Id
    instance_id: Id
    timestamp: Number


class NotificationOut(Out):
    received: Literal[True]
    broadcasted: bool


class PreCompactIn(Schema):
    session_id: Id
    instance_id: Id
    context_size: Number
    timestamp: Number


class PreCompactOut(Out):
    acknowledged: Literal[True]
    state_saved: bool


# --- sessions ------------------------------------------------------------------------------------------
class SessionStateGetIn(Schema):
    session_id: Id
    from_timestamp: Number = None  # type: ignore[assignment]
    to_timestamp: Number = None  # type: ignore[assignment]
    event_types: list[str] = None  # type: ignore[assignment]
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    condensed: bool = False


class SessionEventOut(Out):
    event_id: str
    event_type: str
    timestamp: int
    data: dict[str, Any]
    labels: list[str] | None = opt()


class SessionSummary(Out):
    total_events: int
    first_event: int | None = opt()
    last_event: int | None = opt()
    event_counts: dict[str, int]


class ToolUse(Out):
    name: str
    count: int
    last_used: int


class PromptUse(Out):
    prompt: str
    timestamp: int


class Condensed(Out):
    tasks: list[dict[str, Any]] | None = opt()
    tools: list[ToolUse] | None = opt()
    prompts: list[PromptUse] | None = opt()
    todos: list[Any] | None = opt()


class SessionStateGetOut(Out):
    session_id: str
    events: list[SessionEventOut]
    summary: SessionSummary | None = opt()
    condensed: Condensed | None = opt()


class SessionRehydrateIn(Schema):
    session_id: Id
    snapshot_id: str = None  # type: ignore[assignment]
    from_timestamp: Number = None  # type: ignore[assignment]
    instance_id: Id


class SnapshotRef(Out):
    id: str
    timestamp: int
    event_count: int


class TaskRef(Out):
    id: str
    text: str
    status: str


class SessionContext(Out):
    last_tasks: list[TaskRef]
    last_tools: list[str]
    last_prompt: str | None = opt()
    active_todos: list[Any]


class SessionRehydrateOut(Out):
    session_id: str
    rehydrated: Literal[True]
    snapshot: SnapshotRef | None = opt()
    context: SessionContext


class SnapshotCreateIn(Schema):
    session_id: Id
    instance_id: Id
    reason: Literal["pre_compact", "manual", "checkpoint", "error_recovery"]
    include_events: bool = True
    metadata: dict[str, Any] = None  # type: ignore[assignment]


class SnapshotCreateOut(Out):
    snapshot_id: str
    session_id: str
    timestamp: int
    size: int
    event_count: int
