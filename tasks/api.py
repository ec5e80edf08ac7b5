"""Operator REST API over tasks (DRF): list with filters, detail with the task's event history."""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination

from events.models import AuditEvent
from tasks.models import Task, TaskStatus


class TaskPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        from django.conf import settings

        self.page_size = settings.CB_API_PAGE_SIZE
        return super().get_page_size(request)


class TaskSerializer(serializers.ModelSerializer):
    assignedTo = serializers.CharField(source="assigned_to", allow_null=True, read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True, read_only=True)

    class Meta:
        model = Task
        fields = ["id", "text", "status", "priority", "assignedTo", "result", "error", "metadata",
                  "createdAt", "updatedAt", "completedAt"]


class TaskEventSerializer(serializers.ModelSerializer):
    eventId = serializers.CharField(source="event_id")
    type = serializers.CharField(source="event_type")
    occurredAt = serializers.DateTimeField(source="occurred_at")
    correlationId = serializers.CharField(source="correlation_id", allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["eventId", "type", "kind", "actor", "occurredAt", "correlationId", "payload", "metadata"]


class TaskDetailSerializer(TaskSerializer):
    events = serializers.SerializerMethodField()

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "events"]

    @extend_schema_field(TaskEventSerializer(many=True))
    def get_events(self, task: Task) -> list[dict]:
        rows = (AuditEvent.objects.filter(kind="event")
                .filter(Q(payload__id=task.id) | Q(payload__taskId=task.id))
                .order_by("occurred_at", "id")[:500])
        return TaskEventSerializer(rows, many=True).data


FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, description="one status or several, comma-separated"),
    OpenApiParameter("assignee", OpenApiTypes.STR, description="an instance id, or `none` for unassigned"),
    OpenApiParameter("priority", OpenApiTypes.INT, description="exact priority"),
    OpenApiParameter("priority_min", OpenApiTypes.INT),
    OpenApiParameter("priority_max", OpenApiTypes.INT),
    OpenApiParameter("q", OpenApiTypes.STR, description="text contains (case-insensitive)"),
]


def _int(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: "must be an integer"}) from None
    if not 0 <= value <= 100:
        raise ValidationError({name: "must be from 0 to 100"})
    return value


@extend_schema_view(list=extend_schema(parameters=FILTERS), retrieve=extend_schema(responses=TaskDetailSerializer))
class TaskViewSet(viewsets.ReadOnlyModelViewSet):
    """Tasks as PostgreSQL holds them; the live copy is in Redis (the board shows both agree)."""

    queryset = Task.objects.all()
    serializer_class = TaskSerializer
    pagination_class = TaskPagination

    def get_serializer_class(self):
        return TaskDetailSerializer if self.action == "retrieve" else TaskSerializer

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action != "list":
            return qs
        params = self.request.query_params
        if status := params.get("status"):
            wanted = [s for s in status.split(",") if s]
            unknown = sorted(set(wanted) - set(TaskStatus.values))
            if unknown:
                raise ValidationError({"status": f"unknown status {unknown[0]!r}; one of {TaskStatus.values}"})
            qs = qs.filter(status__in=wanted)
        if (assignee := params.get("assignee")) is not None and assignee != "":
            qs = qs.filter(Q(assigned_to__isnull=True) | Q(assigned_to="")) if assignee == "none" \
                else qs.filter(assigned_to=assignee)
        if (priority := _int(self.request, "priority")) is not None:
            qs = qs.filter(priority=priority)
        if (low := _int(self.request, "priority_min")) is not None:
            qs = qs.filter(priority__gte=low)
        if (high := _int(self.request, "priority_max")) is not None:
            qs = qs.filter(priority__lte=high)
        if text := params.get("q"):
            qs = qs.filter(text__icontains=text)
        return qs
