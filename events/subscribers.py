"""The built-in durable subscriptions, loaded by consume_streams (settings.CB_SUBSCRIPTION_MODULES)."""

from events import audit  # noqa: F401  (the audit drain)
