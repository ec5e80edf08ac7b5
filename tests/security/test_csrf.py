"""CSRF on every Django form: the middleware is on and nothing opts out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def test_csrf_middleware_is_on():
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE


def test_no_view_is_exempt():
    found = subprocess.run(["git", "grep", "-l", "csrf_exempt", "--", "*.py", ":!tests"], cwd=ROOT,
                           capture_output=True, text=True).stdout.split()
    assert found == []


def test_admin_login_without_a_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    answer = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert answer.status_code == 403
    page = client.get("/admin/login/")
    assert b"csrfmiddlewaretoken" in page.content
