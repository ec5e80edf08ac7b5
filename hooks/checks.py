"""System check: HOOK_VALIDATION_RULES / HOOK_SAFE_PATTERNS must parse, or every pre-tool call would fail."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from hooks.rules import compile_rules, rows_from_env


@checks.register()
def hook_rule_overrides_parse(app_configs, **kwargs):
    try:
        rows = rows_from_env(settings.CB_HOOK_VALIDATION_RULES, settings.CB_HOOK_SAFE_PATTERNS)
        if rows is not None:
            compile_rules(rows)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return [checks.Error(f"HOOK_VALIDATION_RULES / HOOK_SAFE_PATTERNS cannot be used: {exc!r}",
                             hint='Groups look like {"name", "tools", "severity", "action", '
                                  '"patterns": [{"regex", "message", "replacement"?}]}',
                             id="hooks.E001")]
    return []
