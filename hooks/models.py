"""Hook rules, the hook audit trail and session state (SPEC §10, §11.1).

Table and column names follow the original's Prisma naming (table = model name, camelCase
columns) for the tables the original has; HookRule is ours (operator-editable validator rules).
"""

from __future__ import annotations

import re

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Now


class Severity(models.TextChoices):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class RuleAction(models.TextChoices):
    ALLOW = "allow", "allow (safe pattern, checked first)"
    BLOCK = "block"
    WARN = "warn"
    MODIFY = "modify"


class HookRule(models.Model):
    """One validator pattern (SPEC §10.1). Rules of one `group` share tools, severity and action.

    An empty table means the built-in defaults (hooks/rules.py); the first migration stores those
    defaults here so operators can edit them. Disable a rule rather than deleting all of them.
    """

    group = models.CharField(max_length=100, help_text="Rule group, e.g. dangerous_operations")
    tools = ArrayField(models.CharField(max_length=100), default=list, blank=True,
                       help_text="Tool names or substrings, matched case-insensitively; empty = every tool")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MEDIUM)
    action = models.CharField(max_length=10, choices=RuleAction.choices, default=RuleAction.BLOCK)
    pattern = models.TextField(help_text="Python regular expression, searched anywhere in the command")
    message = models.TextField(blank=True, default="", help_text="{{match}} is replaced by the matched text")
    replacement = models.TextField(null=True, blank=True, help_text="For modify rules: replaces every match")
    case_insensitive = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    position = models.IntegerField(default=0, help_text="Order within the group (ascending)")
    created_at = models.DateTimeField(db_default=Now(), db_column="createdAt")
    updated_at = models.DateTimeField(auto_now=True, db_column="updatedAt")

    class Meta:
        db_table = "HookRule"
        ordering = ["group", "position", "id"]

    def __str__(self) -> str:
        return f"{self.group}: {self.pattern}"

    def clean(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValidationError({"pattern": f"Not a valid regular expression: {exc}"}) from exc
        if self.action == RuleAction.MODIFY and self.replacement is None:
            raise ValidationError({"replacement": "A modify rule needs a replacement (it may be empty)."})


class HookAudit(models.Model):
    """One row per hook call and its decision (SPEC §11.1; written off the request path)."""

    id = models.TextField(primary_key=True)
    hook_type = models.TextField(db_column="hookType", db_index=True)
    hook_id = models.TextField(null=True, blank=True, db_column="hookId")
    session_id = models.TextField(null=True, blank=True, db_column="sessionId", db_index=True)
    instance_id = models.TextField(null=True, blank=True, db_column="instanceId")
    params = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    allowed = models.BooleanField(db_index=True)
    modified = models.BooleanField(default=False)
    reason = models.TextField(null=True, blank=True)
    execution_time = models.IntegerField(null=True, blank=True, db_column="executionTime")
    timestamp = models.DateTimeField(db_default=Now(), db_index=True)

    class Meta:
        db_table = "HookAudit"
        ordering = ["-timestamp"]

    def __str__(self) -> str:
        return f"{self.hook_type} {'allowed' if self.allowed else 'blocked'}"


class SessionEvent(models.Model):
    id = models.TextField(primary_key=True)
    event_id = models.TextField(unique=True, db_column="eventId")
    session_id = models.TextField(db_column="sessionId", db_index=True)
    instance_id = models.TextField(db_column="instanceId", db_index=True)
    event_type = models.TextField(db_column="eventType", db_index=True)
    event_data = models.JSONField(db_column="eventData")
    labels = ArrayField(models.TextField(), default=list)
    timestamp = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(db_default=Now(), db_column="createdAt")

    class Meta:
        db_table = "SessionEvent"
        indexes = [models.Index(fields=["session_id", "timestamp"], name="sessionevent_session_ts")]

    def __str__(self) -> str:
        return f"{self.session_id} {self.event_type}"


class SnapshotReason(models.TextChoices):
    PRE_COMPACT = "pre_compact"
    MANUAL = "manual"
    CHECKPOINT = "checkpoint"
    ERROR_RECOVERY = "error_recovery"
    SESSION_END = "session_end"
    THRESHOLD = "threshold"


class SessionSnapshot(models.Model):
    id = models.TextField(primary_key=True)
    snapshot_id = models.TextField(unique=True, db_column="snapshotId")
    session_id = models.TextField(db_column="sessionId", db_index=True)
    instance_id = models.TextField(db_column="instanceId")
    reason = models.TextField(choices=SnapshotReason.choices)
    event_count = models.IntegerField(db_column="eventCount")
    size = models.IntegerField()
    context = models.JSONField()
    summary = models.JSONField()
    event_ids = ArrayField(models.TextField(), default=list, db_column="eventIds")
    from_time = models.DateTimeField(db_column="fromTime")
    to_time = models.DateTimeField(db_column="toTime")
    created_at = models.DateTimeField(db_default=Now(), db_column="createdAt", db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_column="expiresAt")

    class Meta:
        db_table = "SessionSnapshot"
        indexes = [models.Index(fields=["session_id", "created_at"], name="sessionsnapshot_session_ts")]

    def __str__(self) -> str:
        return self.snapshot_id


class SessionState(models.Model):
    id = models.TextField(primary_key=True)
    session_id = models.TextField(unique=True, db_column="sessionId")
    instance_id = models.TextField(db_column="instanceId", db_index=True)
    last_event_id = models.TextField(null=True, blank=True, db_column="lastEventId")
    last_activity = models.DateTimeField(db_column="lastActivity", db_index=True)
    event_count = models.IntegerField(default=0, db_column="eventCount")
    active_tasks = models.JSONField(null=True, blank=True, db_column="activeTasks")
    recent_tools = models.JSONField(null=True, blank=True, db_column="recentTools")
    current_todos = models.JSONField(null=True, blank=True, db_column="currentTodos")
    metadata = models.JSONField(null=True, blank=True)
    is_active = models.BooleanField(default=True, db_column="isActive", db_index=True)
    is_stale = models.BooleanField(default=False, db_column="isStale")
    needs_snapshot = models.BooleanField(default=False, db_column="needsSnapshot")
    created_at = models.DateTimeField(db_default=Now(), db_column="createdAt")
    updated_at = models.DateTimeField(auto_now=True, db_column="updatedAt")

    class Meta:
        db_table = "SessionState"

    def __str__(self) -> str:
        return self.session_id
