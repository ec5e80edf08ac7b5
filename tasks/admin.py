"""Admin: tasks and attachments. Changes go through the handlers (Redis first, then PostgreSQL, with
events), never by editing rows: the actions call dashboard.actions, deletion calls task.delete."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm

from claudebench.core.errors import CbError
from dashboard import actions
from tasks.models import Task, TaskAttachment


class ReassignForm(ActionForm):
    instance_id = forms.CharField(required=False, label="instance id (for reassign)")


class AttachmentInline(admin.TabularInline):
    model = TaskAttachment
    fields = ("key", "type", "size", "created_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


def _run(modeladmin, request, queryset, label: str, fn) -> None:
    done, failed = 0, []
    for task in queryset:
        try:
            fn(task)
            done += 1
        except CbError as exc:
            failed.append(f"{task.id}: {exc.detail}")
    if done:
        modeladmin.message_user(request, f"{label}: {done} task(s).", messages.SUCCESS)
    for line in failed:
        modeladmin.message_user(request, line, messages.ERROR)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "priority", "assigned_to", "short_text", "created_at", "completed_at")
    list_filter = ("status", "priority", "assigned_to", "created_at")
    search_fields = ("id", "text", "assigned_to")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 100
    readonly_fields = ("id", "text", "status", "priority", "assigned_to", "result", "error", "metadata",
                       "created_at", "updated_at", "completed_at")
    inlines = [AttachmentInline]
    action_form = ReassignForm
    actions = ["requeue", "reassign", "delete_through_handler"]

    @admin.display(description="text")
    def short_text(self, task: Task) -> str:
        return task.text if len(task.text) <= 80 else task.text[:79] + "…"

    def has_add_permission(self, request) -> bool:  # tasks are created through task.create
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the action below deletes through task.delete (Redis, queues, PostgreSQL)

    def get_actions(self, request):
        found = super().get_actions(request)
        found.pop("delete_selected", None)
        return found

    @admin.action(description="Requeue (unassign, back to pending)")
    def requeue(self, request, queryset):
        user = request.user.get_username()
        _run(self, request, queryset, "Requeued", lambda t: actions.task_requeue(
            task_id=t.id, status=t.status, assigned_to=t.assigned_to, operator=user))

    @admin.action(description="Reassign to the instance id entered above")
    def reassign(self, request, queryset):
        instance_id = (request.POST.get("instance_id") or "").strip()
        if not instance_id:
            self.message_user(request, "Enter an instance id to reassign to.", messages.ERROR)
            return
        user = request.user.get_username()
        _run(self, request, queryset, f"Reassigned to {instance_id}", lambda t: actions.task_reassign(
            task_id=t.id, instance_id=instance_id, operator=user))

    @admin.action(description="Delete (task.delete: Redis, queues and PostgreSQL)")
    def delete_through_handler(self, request, queryset):
        user = request.user.get_username()
        _run(self, request, queryset, "Deleted", lambda t: actions.call("task.delete", {"id": t.id}, operator=user))


@admin.register(TaskAttachment)
class TaskAttachmentAdmin(admin.ModelAdmin):
    list_display = ("task", "key", "type", "size", "mime_type", "created_by", "created_at")
    list_filter = ("type", "created_at")
    search_fields = ("task__id", "key", "created_by")
    readonly_fields = ("id", "task", "key", "type", "value", "content", "url", "size", "mime_type",
                       "created_by", "created_at", "updated_at")

    def has_add_permission(self, request) -> bool:  # attachments come from task.create_attachment
        return False
