"""`manage.py ensure_operator`: creates the operator's superuser once, idempotently."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def ensure_operator(verbosity: int = 1) -> str:
    out = StringIO()
    call_command("ensure_operator", stdout=out, verbosity=verbosity)
    return out.getvalue()


def test_creates_a_superuser_with_a_generated_password_shown_once(settings):
    settings.CB_OPERATOR_USERNAME, settings.CB_OPERATOR_PASSWORD = "operator", ""

    first = ensure_operator()

    password = re.fullmatch(r"operator account 'operator' created with password (\S+) \(shown only.*\)\n", first)[1]
    user = get_user_model().objects.get(username="operator")
    assert user.is_superuser and user.is_staff and user.check_password(password)
    assert len(password) >= 20
    assert ensure_operator() == ""  # the second run changes and prints nothing
    user.refresh_from_db()
    assert user.check_password(password)
    assert "exists; nothing to do" in ensure_operator(verbosity=2)


def test_a_password_from_the_environment_is_set_and_kept_in_step(settings):
    settings.CB_OPERATOR_USERNAME, settings.CB_OPERATOR_PASSWORD = "boss", "first-secret-1"

    created = ensure_operator()

    assert created == "operator account 'boss' created (password from CB_OPERATOR_PASSWORD)\n"
    assert "first-secret-1" not in created
    users = get_user_model().objects
    assert users.get(username="boss").check_password("first-secret-1")
    assert ensure_operator() == ""

    settings.CB_OPERATOR_PASSWORD = "second-secret-2"
    assert ensure_operator() == "operator account 'boss': password reset to CB_OPERATOR_PASSWORD\n"
    assert users.get(username="boss").check_password("second-secret-2")
    assert users.filter(is_superuser=True).count() == 1


def test_an_existing_account_keeps_its_password_when_none_is_configured(settings):
    user = get_user_model().objects.create_superuser("operator", "", "chosen-by-hand")
    settings.CB_OPERATOR_USERNAME, settings.CB_OPERATOR_PASSWORD = "operator", ""

    assert ensure_operator() == ""

    user.refresh_from_db()
    assert user.check_password("chosen-by-hand")
