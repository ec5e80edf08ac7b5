"""The operator pages (server-rendered; their scripts read /api/ and /ws). Staff only."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from tasks.models import TaskStatus

PAGES = [("overview", "Overview"), ("events", "Live events"), ("board", "Task board"), ("instances", "Instances")]


def _page(request, name: str, **extra):
    context = {"page": name, "pages": PAGES, "poll_ms": settings.CB_DASHBOARD_POLL_MS, **extra}
    return render(request, f"dashboard/{name}.html", context)


@staff_member_required
def overview(request):
    return _page(request, "overview")


@staff_member_required
def events(request):
    return _page(request, "events", pattern=request.GET.get("pattern", "*"))


@staff_member_required
def board(request):
    return _page(request, "board", statuses=TaskStatus.values)


@staff_member_required
def instances(request):
    return _page(request, "instances")
