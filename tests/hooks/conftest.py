import pytest


@pytest.fixture(autouse=True)
def _rules_checked_on_every_call(settings):
    """Production checks for rule changes every CB_HOOK_RULES_REFRESH_MS; tests see them at once."""
    settings.CB_HOOK_RULES_REFRESH_MS = 0
