"""Admin: the audit trail (filters by event type, actor, correlation id and time) and the dead
letters of the durable subscriptions (listing and requeue)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from claudebench.core.errors import CbError
from events import patterns
from events.bus import get_bus
from events.models import AuditEvent


class InputFilter(admin.SimpleListFilter):
    """A free-text filter (a value box instead of a list of every distinct value)."""

    template = "admin/events/input_filter.html"

    def lookups(self, request, model_admin):
        return ((),)  # the template renders the box; Django only needs something here

    def choices(self, changelist):
        yield {
            "query_parts": [(k, v) for k, values in changelist.get_filters_params().items()
                            for v in (values if isinstance(values, list) else [values])
                            if k != self.parameter_name],
            "value": self.value() or "",
        }


class EventTypeFilter(InputFilter):
    title = "event type (exact, * or prefix.*)"
    parameter_name = "type"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value or value == "*":
            return queryset
        if not patterns.valid(value):
            return queryset.none()
        if value.endswith(".*"):
            return queryset.filter(event_type__startswith=value[:-1])
        return queryset.filter(event_type=value)


class ActorFilter(InputFilter):
    title = "actor"
    parameter_name = "actor"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        return queryset.filter(actor=value) if value else queryset


class CorrelationFilter(InputFilter):
    title = "correlation id"
    parameter_name = "correlation"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        return queryset.filter(correlation_id=value) if value else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "kind", "event_type", "actor", "result", "correlation_id", "event_id")
    list_filter = (EventTypeFilter, ActorFilter, CorrelationFilter, "kind", "result", "occurred_at")
    search_fields = ("event_id", "event_type", "actor", "correlation_id")
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at", "-id")
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over a large audit table on every page is slow
    change_list_template = "admin/events/auditevent/change_list.html"

    actions = ["replay"]

    @admin.action(description="Replay: publish the selected events again (new ids, metadata.replayOf)")
    def replay(self, request, queryset) -> None:  # issue 7: the operator's control room
        from dashboard.actions import event_replay

        done = 0
        for row in queryset.filter(kind="event"):
            event_replay(event_type=row.event_type, payload=row.payload, metadata=row.metadata,
                         original_id=row.event_id, operator=request.user.get_username())
            done += 1
        self.message_user(request, f"Replayed {done} event(s); request records and audit entries are skipped.",
                          messages.SUCCESS if done else messages.WARNING)

    # The trail is written by the drain only: read-only here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        extra = [
            path("dead-letters/", self.admin_site.admin_view(self.dead_letters_view), name="events_dead_letters"),
            path("dead-letters/requeue/", self.admin_site.admin_view(self.requeue_view),
                 name="events_dead_letters_requeue"),
        ]
        return extra + super().get_urls()

    def dead_letters_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        event_type = request.GET.get("type") or None
        rows = async_to_sync(get_bus().dead_letters)(event_type, limit=500)
        context = {**self.admin_site.each_context(request), "title": "Dead letters", "rows": rows,
                   "type": event_type or "", "opts": self.model._meta}
        return TemplateResponse(request, "admin/events/dead_letters.html", context)

    def requeue_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:events_dead_letters"))
        if not request.user.is_superuser:
            raise PermissionDenied
        event_type, dlq_id = request.POST.get("type", ""), request.POST.get("id", "")
        try:
            entry = async_to_sync(get_bus().requeue)(event_type, dlq_id)
        except CbError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        else:
            self.message_user(request, f"Requeued {event_type} {dlq_id} as stream entry {entry}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:events_dead_letters"))
