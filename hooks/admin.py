"""Admin: operators edit validator rules (effective on the next hook call) and read the hook audit."""

from __future__ import annotations

from django.contrib import admin

from hooks.models import HookAudit, HookRule, SessionEvent, SessionSnapshot, SessionState


@admin.register(HookRule)
class HookRuleAdmin(admin.ModelAdmin):
    list_display = ("group", "action", "severity", "pattern", "tools", "enabled", "position")
    list_filter = ("action", "severity", "enabled", "group")
    list_editable = ("enabled",)
    search_fields = ("group", "pattern", "message")
    ordering = ("group", "position", "id")


@admin.register(HookAudit)
class HookAuditAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "hook_type", "allowed", "modified", "reason", "session_id", "instance_id")
    list_filter = ("hook_type", "allowed", "modified")
    search_fields = ("session_id", "instance_id", "reason")
    date_hierarchy = "timestamp"

    def has_add_permission(self, request) -> bool:  # an audit trail is written by the server only
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SessionState)
class SessionStateAdmin(admin.ModelAdmin):
    list_display = ("session_id", "instance_id", "event_count", "last_activity", "is_active")
    search_fields = ("session_id", "instance_id")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SessionSnapshot)
class SessionSnapshotAdmin(admin.ModelAdmin):
    list_display = ("snapshot_id", "session_id", "reason", "event_count", "created_at")
    list_filter = ("reason",)
    search_fields = ("session_id", "snapshot_id")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SessionEvent)  # issue 7: every model in the control room
class SessionEventAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "event_type", "session_id", "instance_id", "event_id")
    list_filter = ("event_type",)
    search_fields = ("session_id", "instance_id", "event_id")
    date_hierarchy = "timestamp"

    def has_add_permission(self, request) -> bool:  # written by the session state processor only
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
