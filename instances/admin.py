"""Admin for the instance history (SPEC §11.1); live state stays in Redis (system.get_state).

Issue 7 (operator's view): the live state beside each row, and an unregister action that runs
system.unregister (requeues the instance's tasks, cleans its Redis keys, marks the row OFFLINE).
"""

from django.contrib import admin, messages

from claudebench.core.errors import CbError
from dashboard import actions, live
from instances.models import Instance


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "status", "live_state", "last_heartbeat", "updated_at")
    list_filter = ("status", "role", "last_heartbeat")
    search_fields = ("id", "name", "role")
    readonly_fields = ("id", "name", "role", "status", "last_heartbeat", "capabilities", "metadata",
                       "created_at", "updated_at")
    actions = ["unregister"]

    def changelist_view(self, request, extra_context=None):
        self._live = {i["id"]: i for i in live.run(live.instances)}
        return super().changelist_view(request, extra_context)

    @admin.display(description="live (Redis)")
    def live_state(self, obj: Instance) -> str:
        found = getattr(self, "_live", {}).get(obj.id)
        if found is None:
            return "gone"
        age = found["heartbeatAgeMs"]
        leader = " · leader" if found["leader"] else ""
        return f"{found['health']}{leader} · {age} ms" if age is not None else found["health"]

    def has_add_permission(self, request) -> bool:  # instances register themselves
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # unregister below; the row stays as history

    @admin.action(description="Unregister (system.unregister: requeue its tasks, clean its keys)")
    def unregister(self, request, queryset):
        user = request.user.get_username()
        for inst in queryset:
            try:
                out = actions.instance_unregister(instance_id=inst.id, operator=user)
            except CbError as exc:
                self.message_user(request, f"{inst.id}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{inst.id} unregistered ({out.get('tasksReassigned', 0)} task(s) "
                                           "requeued)", messages.SUCCESS)
