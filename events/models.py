"""The audit trail (issue 4 item 6): every event, request record and audit entry of the streams,
written by the audit drain subscription, one row per event id (SPEC §3.6, §4.7)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class AuditKind(models.TextChoices):
    EVENT = "event"  # a published domain event (cb:stream:{type})
    REQUEST = "request"  # a handler's request record (metadata.kind == "request")
    AUDIT = "audit"  # an entry of cb:audit:* (audit layer, limiter, breaker, hook decisions)


class AuditEvent(models.Model):
    # Envelope id, or "<stream>/<entry id>" for audit entries, which carry none: the drain's
    # idempotency key (INSERT … ON CONFLICT DO NOTHING).
    event_id = models.TextField(unique=True, db_column="eventId")
    kind = models.TextField(choices=AuditKind.choices, db_index=True)
    event_type = models.TextField(db_column="eventType", db_index=True)
    actor = models.TextField(blank=True, default="", db_index=True)
    correlation_id = models.TextField(null=True, blank=True, db_column="correlationId", db_index=True)
    result = models.TextField(blank=True, default="")  # audit entries: success, failure, blocked, allowed
    stream = models.TextField()
    entry_id = models.TextField(db_column="entryId")
    payload = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    occurred_at = models.DateTimeField(db_column="occurredAt", db_index=True)
    recorded_at = models.DateTimeField(db_default=Now(), db_column="recordedAt")

    class Meta:
        db_table = "AuditEvent"
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
