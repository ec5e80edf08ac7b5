"""Any save or delete of a token (admin, shell, command) replaces its cached copy in Redis."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from claudebench.security.models import ApiToken


@receiver(post_save, sender=ApiToken)
@receiver(post_delete, sender=ApiToken)
def _token_changed(sender, instance: ApiToken, **kwargs) -> None:
    from claudebench.security import tokens

    tokens.publish_state(instance, deleted=kwargs.get("signal") is post_delete)
