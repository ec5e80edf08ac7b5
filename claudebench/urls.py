"""URLs served by Django: what people click (admin, pages, operator API)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
