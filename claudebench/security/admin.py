"""API tokens in the admin: issue (the token is shown once), revoke, list. Digests never shown."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from claudebench.security import tokens
from claudebench.security.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "scope", "shown_prefix", "created_at", "revoked_at")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    fields = ("name", "scope", "shown_prefix", "created_at", "revoked_at")
    readonly_fields = ("shown_prefix", "created_at", "revoked_at")
    actions = ["revoke_selected"]

    @admin.display(description="token starts with")
    def shown_prefix(self, obj: ApiToken) -> str:
        return f"cb_{obj.prefix}_…" if obj.prefix else "(set when saved)"

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        row, token = tokens.issue(obj.name, obj.scope)
        obj.pk, obj.prefix, obj.digest, obj.created_at = row.pk, row.prefix, row.digest, row.created_at
        messages.warning(request, f"New token for {row.name} ({row.scope}) — copy it now, it is not stored: {token}")

    @admin.action(description="Revoke the selected tokens (at once, on every process)")
    def revoke_selected(self, request, queryset) -> None:
        count = 0
        for row in queryset.filter(revoked_at__isnull=True):
            row.revoked_at = timezone.now()
            row.save(update_fields=["revoked_at"])  # the signal overwrites the cached copy
            count += 1
        self.message_user(request, f"Revoked {count} token(s).")
