"""Instances (SPEC §11.1). Table and column names are the original's (Prisma: table = model name,
camelCase columns), because system.postgres.* exposes them. Redis stays the live source of truth;
this table is the durable history, upserted on register, on a heartbeat that changes the status,
when the gossip worker marks an instance dead, and on unregister."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class InstanceStatus(models.TextChoices):
    ACTIVE = "ACTIVE"
    IDLE = "IDLE"
    BUSY = "BUSY"
    OFFLINE = "OFFLINE"


class Instance(models.Model):
    id = models.TextField(primary_key=True)  # the instance id itself, so every write is an upsert
    name = models.TextField()
    role = models.TextField(db_index=True)
    status = models.TextField(choices=InstanceStatus.choices, default=InstanceStatus.ACTIVE, db_index=True)
    last_heartbeat = models.DateTimeField(db_default=Now(), db_column="lastHeartbeat")
    capabilities = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), db_column="createdAt")
    updated_at = models.DateTimeField(auto_now=True, db_column="updatedAt")

    class Meta:
        db_table = "Instance"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} [{self.status}] {self.role}"
