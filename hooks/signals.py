"""Rule changes take effect at once: saving or deleting a HookRule bumps the rules version that
every process compares on its next hook call (hooks/validator.py). Nothing else lives here."""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from claudebench.core import keys
from hooks.models import HookRule

log = logging.getLogger("claudebench.hooks")


def rules_changed() -> None:
    """Bump the rules version (sync: the admin and the ORM call this outside any event loop)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.incr(keys.HOOK_RULES_VERSION)
    except redis.RedisError:
        log.exception("could not publish a hook rule change; processes keep the old rules until the next change")
    finally:
        client.close()


@receiver(post_save, sender=HookRule)
@receiver(post_delete, sender=HookRule)
def _on_rule_change(sender, **kwargs) -> None:
    # After COMMIT, so a process reloading at once reads the new row, not the old one.
    transaction.on_commit(rules_changed)
