"""API tokens for the machine surfaces (JSON-RPC, REST, hooks, /mcp, /ws).

Only a SHA-256 digest of each token is stored; the token itself is shown once when it is issued.
A token reads `cb_<prefix>_<secret>`: the short prefix is stored in clear so a request finds its
row (and an operator can tell tokens apart) without scanning.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from claudebench.security.scopes import AGENT, SCOPES


class ApiToken(models.Model):
    name = models.CharField(max_length=100, help_text="Who or what uses this token.")
    scope = models.CharField(
        max_length=10, choices=[(s, s) for s in SCOPES], default=AGENT,
        help_text="agent: task, hook and read handlers; operator: the same (operator pages use a "
                  "session login); admin: also system.flush, system.postgres.query, "
                  "system.redis.keys/get and config.set.",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        state = " (revoked)" if self.revoked_at else ""
        return f"{self.name} [{self.scope}] cb_{self.prefix}_…{state}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
