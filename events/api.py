"""Operator REST API over the audit trail (DRF): filters by type, actor, correlation id, kind and time;
cursor pagination (stable under inserts, cheap on a large table)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination

from events import patterns
from events.models import AuditEvent, AuditKind


class AuditPagination(CursorPagination):
    ordering = ("-occurred_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        self.page_size = settings.CB_API_PAGE_SIZE
        return super().get_page_size(request)


class AuditEventSerializer(serializers.ModelSerializer):
    eventId = serializers.CharField(source="event_id")
    type = serializers.CharField(source="event_type")
    correlationId = serializers.CharField(source="correlation_id", allow_null=True)
    entryId = serializers.CharField(source="entry_id")
    occurredAt = serializers.DateTimeField(source="occurred_at")

    class Meta:
        model = AuditEvent
        fields = ["eventId", "kind", "type", "actor", "result", "correlationId", "stream", "entryId",
                  "payload", "metadata", "occurredAt"]


def parse_time(name: str, raw: str) -> datetime:
    """ISO 8601, or epoch milliseconds."""
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    value = parse_datetime(raw)
    if value is None:
        raise ValidationError({name: "use ISO 8601 (2026-11-25T10:00:00Z) or epoch milliseconds"})
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@extend_schema(parameters=[
    OpenApiParameter("type", OpenApiTypes.STR, description="event type: exact, `*` or `prefix.*`"),
    OpenApiParameter("actor", OpenApiTypes.STR),
    OpenApiParameter("correlation_id", OpenApiTypes.STR),
    OpenApiParameter("kind", OpenApiTypes.STR, enum=AuditKind.values),
    OpenApiParameter("since", OpenApiTypes.STR, description="from this time (ISO 8601 or epoch ms), inclusive"),
    OpenApiParameter("until", OpenApiTypes.STR, description="before this time (ISO 8601 or epoch ms), exclusive"),
])
class AuditEventList(generics.ListAPIView):
    """The audit trail, newest first."""

    serializer_class = AuditEventSerializer
    pagination_class = AuditPagination

    def get_queryset(self):
        qs, params = AuditEvent.objects.all(), self.request.query_params
        if kind_type := params.get("type"):
            if not patterns.valid(kind_type):
                raise ValidationError({"type": "use an event type, '*' or 'prefix.*'"})
            if kind_type.endswith(".*"):
                qs = qs.filter(event_type__startswith=kind_type[:-1])
            elif kind_type != "*":
                qs = qs.filter(event_type=kind_type)
        if actor := params.get("actor"):
            qs = qs.filter(actor=actor)
        if correlation := params.get("correlation_id"):
            qs = qs.filter(correlation_id=correlation)
        if kind := params.get("kind"):
            if kind not in AuditKind.values:
                raise ValidationError({"kind": f"one of {AuditKind.values}"})
            qs = qs.filter(kind=kind)
        if since := params.get("since"):
            qs = qs.filter(occurred_at__gte=parse_time("since", since))
        if until := params.get("until"):
            qs = qs.filter(occurred_at__lt=parse_time("until", until))
        return qs
