"""Tokens in the admin: issued with the token shown once, revoked by an action."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from claudebench.security import tokens
from claudebench.security.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client() -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw-long-enough")
    client = Client()
    client.force_login(user)
    return client


def test_issue_in_the_admin_shows_the_token_once_and_stores_its_digest(admin_client):
    answer = admin_client.post("/admin/security/apitoken/add/", {"name": "from admin", "scope": "admin"}, follow=True)
    assert answer.status_code == 200
    [token] = re.findall(r"cb_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}", answer.content.decode())
    row = ApiToken.objects.get(name="from admin")
    assert row.scope == "admin" and row.digest == tokens.digest_of(token) and row.prefix == tokens.split(token)
    listing = admin_client.get("/admin/security/apitoken/").content.decode()
    assert token not in listing and row.digest not in listing


def test_revoke_action(admin_client):
    row, _token = tokens.issue("to revoke", "agent")
    answer = admin_client.post("/admin/security/apitoken/", {"action": "revoke_selected", "_selected_action": [row.pk]},
                               follow=True)
    assert answer.status_code == 200
    row.refresh_from_db()
    assert row.revoked_at is not None
