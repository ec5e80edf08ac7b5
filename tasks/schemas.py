"""Input and output models of the task handlers (SPEC §5.3.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from claudebench.core.schema import Out, Schema, opt

Status = Literal["pending", "in_progress", "completed", "failed"]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Id = Annotated[str, Field(min_length=1)]
Priority = Annotated[int, Field(ge=0, le=100)]

# A field typed `X` with default None is "optional" the way the original's zod schemas are:
# absent is fine, an explicit null is a validation error (SPEC §18.2).


class TaskCreateIn(Schema):
    text: Text
    priority: Priority = 50
    metadata: dict[str, Any] = None  # type: ignore[assignment]


class TaskCreateOut(Out):
    id: str
    text: str
    status: Literal["pending"]
    priority: int
    created_at: str


class TaskUpdates(Schema):
    text: Text = None  # type: ignore[assignment]
    status: Status = None  # type: ignore[assignment]
    priority: Priority = None  # type: ignore[assignment]
    metadata: dict[str, Any] = None  # type: ignore[assignment]


class TaskUpdateIn(Schema):
    id: Id
    updates: TaskUpdates


class TaskUpdateOut(Out):
    id: str
    text: str
    status: Status
    priority: int
    created_at: str
    updated_at: str


class TaskAssignIn(Schema):
    task_id: Id
    instance_id: Id


class TaskAssignOut(Out):
    task_id: str
    instance_id: str
    assigned_at: str


class TaskUnassignIn(Schema):
    task_id: Id


class TaskUnassignOut(Out):
    task_id: str
    previous_assignment: str | None
    unassigned_at: str


class TaskClaimIn(Schema):
    worker_id: Id
    max_tasks: Annotated[int, Field(ge=1, le=10)] = 1


class AttachmentValue(Out):
    type: str
    value: Any = None
    created_at: str


class ClaimedTask(Out):
    id: str
    text: str
    priority: int
    status: Status
    assigned_to: str | None
    metadata: dict[str, Any] | None
    result: Any
    error: str | None
    created_at: str
    updated_at: str
    completed_at: str | None
    attachments: dict[str, AttachmentValue] | None = opt()
    attachment_count: int | None = opt()


class TaskClaimOut(Out):
    claimed: bool
    task_id: str | None = opt()
    task: ClaimedTask | None = opt()


class TaskCompleteIn(Schema):
    id: Id = None  # type: ignore[assignment]
    task_id: Id = None  # type: ignore[assignment]
    worker_id: str = None  # type: ignore[assignment]
    result: Any = None

    @model_validator(mode="after")
    def _needs_an_id(self) -> TaskCompleteIn:
        if self.id is None and self.task_id is None:
            raise ValueError("Either 'id' or 'taskId' must be provided")
        return self

    @property
    def target(self) -> str:
        return self.id or self.task_id


class TaskCompleteOut(Out):
    id: str
    status: Literal["completed", "failed"]
    completed_at: str


class TaskListIn(Schema):
    status: Status = None  # type: ignore[assignment]
    assigned_to: str = None  # type: ignore[assignment]
    priority: Priority = None  # type: ignore[assignment]
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0)] = 0
    order_by: Literal["createdAt", "updatedAt", "priority", "status", "assignedTo"] = "createdAt"
    order: Literal["asc", "desc"] = "desc"


class ResultAttachment(Out):
    type: str
    value: Any = opt()
    content: str | None = opt()
    created_at: str


class ListedTask(Out):
    id: str
    text: str
    status: Status
    priority: int
    assigned_to: str | None
    metadata: dict[str, Any] | None
    result: Any
    error: str | None
    created_at: str
    updated_at: str
    completed_at: str | None
    attachment_count: int = 0
    attachment_keys: list[str] | None = opt()
    result_attachment: ResultAttachment | None = opt()


class TaskListOut(Out):
    tasks: list[ListedTask]
    total_count: int
    has_more: bool


class TaskDeleteIn(Schema):
    id: Id


class TaskDeleteOut(Out):
    id: str
    deleted: Literal[True]
    deleted_at: str
