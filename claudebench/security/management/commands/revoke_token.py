"""`manage.py revoke_token ID|PREFIX|TOKEN`: revoke a token; every process refuses it at once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from claudebench.security import tokens
from claudebench.security.models import ApiToken


class Command(BaseCommand):
    help = "Revoke an API token given its id, its prefix (cb_<prefix>_…) or the token itself."

    def add_arguments(self, parser) -> None:
        parser.add_argument("token", help="id, prefix or the full token")

    def handle(self, *args, **options) -> None:
        ref = options["token"].strip()
        prefix = tokens.split(ref) or (ref[3:].split("_")[0] if ref.startswith("cb_") else ref)
        query = ApiToken.objects.filter(prefix=prefix)
        if ref.isdigit():
            query = ApiToken.objects.filter(pk=int(ref)) | query
        row = query.first()
        if row is None:
            raise CommandError(f"no token matches {ref!r}")
        if row.revoked_at is not None:
            self.stdout.write(f"token {row.pk} ({row.name}) was already revoked at {row.revoked_at.isoformat()}")
            return
        tokens.revoke(row)
        self.stdout.write(f"revoked token {row.pk} ({row.name}, scope {row.scope})")
