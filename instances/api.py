"""Operator REST API over instances (DRF): live ones from Redis with heartbeat age and load, and the
PostgreSQL history of those that are gone."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard import live
from instances.models import Instance

LOAD = inline_serializer("InstanceLoad", {
    "queueLength": serializers.IntegerField(), "assignedTasks": serializers.IntegerField(),
    "tasksCompleted": serializers.IntegerField(), "tasksFailed": serializers.IntegerField()})

INSTANCE_FIELDS = {
    "id": serializers.CharField(), "roles": serializers.ListField(child=serializers.CharField()),
    "status": serializers.CharField(), "health": serializers.ChoiceField(["healthy", "stale", "gone"]),
    "lastSeen": serializers.IntegerField(allow_null=True),
    "heartbeatAgeMs": serializers.IntegerField(allow_null=True), "leader": serializers.BooleanField(),
    "live": serializers.BooleanField(), "metadata": serializers.DictField(), "load": LOAD}


class InstanceList(APIView):
    """Every instance: live ones (Redis) first, then the ones only PostgreSQL remembers."""

    @extend_schema(responses=inline_serializer("InstanceList", {
        "count": serializers.IntegerField(),
        "instances": inline_serializer("LiveInstance", INSTANCE_FIELDS, many=True)}))
    def get(self, request):
        found = [{**i, "live": True} for i in live.run(live.instances)]
        known = {i["id"] for i in found}
        for row in Instance.objects.exclude(id__in=known).order_by("id")[:500]:
            found.append({"id": row.id, "roles": [row.role], "status": row.status, "health": "gone",
                          "lastSeen": int(row.last_heartbeat.timestamp() * 1000), "heartbeatAgeMs": None,
                          "leader": False, "live": False, "metadata": row.metadata or {},
                          "load": {"queueLength": 0, "assignedTasks": 0, "tasksCompleted": 0, "tasksFailed": 0}})
        return Response({"count": len(found), "instances": found})
