"""Operator REST API: the cluster overview and the handler registry (with limits and breaker state),
plus the URL table of everything under /api/."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from claudebench.core.errors import CbError
from claudebench.transport import introspection
from dashboard import actions, live
from events.api import AuditEventList
from instances.api import InstanceList
from tasks.api import TaskViewSet
from tasks.models import Task


class Overview(APIView):
    """Health, instances, queue depths, leader, partition flag and call counters (for the charts)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(live.run(live.overview))


class HandlerList(APIView):
    """The handler registry: declared and enforced limits, and each breaker's state."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(live.run(introspection.handlers_with_state))


class TaskRequeue(APIView):
    """Put a task back on the pending queue (task.unassign, then task.update to pending)."""

    @extend_schema(request=None, responses=inline_serializer("Requeued", {"id": serializers.CharField(),
                                                                          "requeued": serializers.BooleanField()}))
    def post(self, request, pk: str):
        task = Task.objects.filter(pk=pk).first()
        if task is None:
            return Response({"detail": f"Task not found: {pk}"}, status=status.HTTP_404_NOT_FOUND)
        try:
            actions.task_requeue(task_id=task.id, status=task.status, assigned_to=task.assigned_to,
                                 operator=request.user.get_username())
        except CbError as exc:
            return Response({"detail": exc.detail, "code": exc.code}, status=exc.http_status)
        return Response({"id": task.id, "requeued": True})


router = SimpleRouter()
router.register("tasks", TaskViewSet, basename="task")

urlpatterns = [
    path("", include(router.urls)),
    path("tasks/<str:pk>/requeue/", TaskRequeue.as_view(), name="task-requeue"),
    path("instances/", InstanceList.as_view(), name="instance-list"),
    path("events/", AuditEventList.as_view(), name="event-list"),
    path("handlers/", HandlerList.as_view(), name="handler-list"),
    path("overview/", Overview.as_view(), name="overview"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
