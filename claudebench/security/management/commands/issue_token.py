"""`manage.py issue_token NAME [--scope agent|operator|admin]`: print a new API token once."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from claudebench.security import tokens
from claudebench.security.scopes import AGENT, SCOPES


class Command(BaseCommand):
    help = "Create an API token and print it (only its SHA-256 digest is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who or what will use the token")
        parser.add_argument("--scope", choices=SCOPES, default=AGENT)

    def handle(self, *args, **options) -> None:
        row, token = tokens.issue(options["name"], options["scope"])
        self.stderr.write(f"token {row.pk} ({row.name}, scope {row.scope}); store it now, it cannot be shown again:")
        self.stdout.write(token)
