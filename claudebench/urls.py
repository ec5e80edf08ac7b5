"""URLs served by Django: what people click (admin, pages, operator API)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),  # operator pages (issue 7)
    path("api/", include(("dashboard.api", "api"))),  # operator REST API, /api/docs/ (issue 7)
]
