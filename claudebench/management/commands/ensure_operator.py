"""`manage.py ensure_operator`: the operator's superuser account exists (DESIGN.md, setup)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the superuser CB_OPERATOR_USERNAME if missing, with CB_OPERATOR_PASSWORD or a generated "
        "password printed once; if CB_OPERATOR_PASSWORD is set, keep the account's password equal to it."
    )

    def handle(self, *args, **options) -> None:
        username = settings.CB_OPERATOR_USERNAME
        wanted = settings.CB_OPERATOR_PASSWORD
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            password = wanted or secrets.token_urlsafe(18)
            users.create_superuser(username=username, email="", password=password)
            if wanted:
                self.stdout.write(f"operator account {username!r} created (password from CB_OPERATOR_PASSWORD)")
            else:
                self.stdout.write(
                    f"operator account {username!r} created with password {password} "
                    f"(shown only this once; set CB_OPERATOR_PASSWORD to choose one)"
                )
        elif wanted and not user.check_password(wanted):
            user.set_password(wanted)
            user.save(update_fields=["password"])
            self.stdout.write(f"operator account {username!r}: password reset to CB_OPERATOR_PASSWORD")
        elif options["verbosity"] >= 2:
            self.stdout.write(f"operator account {username!r} exists; nothing to do")
