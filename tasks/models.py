"""Tasks and their attachments (SPEC §11.1). Table and column names are the original's
(Prisma: table = model name, camelCase columns), because system.postgres.* exposes them."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class TaskStatus(models.TextChoices):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class Task(models.Model):
    id = models.TextField(primary_key=True)
    text = models.TextField()
    status = models.TextField(choices=TaskStatus.choices, default=TaskStatus.PENDING, db_index=True)
    priority = models.IntegerField(default=50, db_index=True)
    assigned_to = models.TextField(null=True, blank=True, db_column="assignedTo", db_index=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), db_column="createdAt")
    updated_at = models.DateTimeField(auto_now=True, db_column="updatedAt")
    completed_at = models.DateTimeField(null=True, blank=True, db_column="completedAt")

    class Meta:
        db_table = "Task"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.id} [{self.status}] {self.text[:60]}"


class AttachmentType(models.TextChoices):
    JSON = "json"
    MARKDOWN = "markdown"
    TEXT = "text"
    URL = "url"
    BINARY = "binary"


class TaskAttachment(models.Model):
    id = models.TextField(primary_key=True)
    task = models.ForeignKey(Task, on_delete=models.CASCADE, db_column="taskId", related_name="attachments")
    key = models.TextField(db_index=True)
    type = models.TextField(choices=AttachmentType.choices, db_index=True)
    value = models.JSONField(null=True, blank=True)
    content = models.TextField(null=True, blank=True)
    url = models.TextField(null=True, blank=True)
    size = models.IntegerField(null=True, blank=True)
    mime_type = models.TextField(null=True, blank=True, db_column="mimeType")
    created_by = models.TextField(null=True, blank=True, db_column="createdBy")
    created_at = models.DateTimeField(db_default=Now(), db_column="createdAt")
    updated_at = models.DateTimeField(auto_now=True, db_column="updatedAt")

    class Meta:
        db_table = "TaskAttachment"
        constraints = [models.UniqueConstraint(fields=["task", "key"], name="taskattachment_task_key_unique")]

    def __str__(self) -> str:
        return f"{self.task_id}/{self.key}"
