"""Admin for the instance history (SPEC §11.1); live state stays in Redis (system.get_state)."""

from django.contrib import admin

from instances.models import Instance


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "status", "last_heartbeat", "updated_at")
    list_filter = ("status", "role")
    search_fields = ("id", "name")
    readonly_fields = ("created_at", "updated_at")
