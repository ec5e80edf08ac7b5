"""System checks for static invariants (STYLE §8): Lua files and wrappers pair up one to one."""

from __future__ import annotations

from django.core import checks


@checks.register()
def lua_scripts_have_wrappers(app_configs, **kwargs):
    from claudebench.core import scripts

    errors = []
    for name in scripts.SOURCES:
        if not callable(getattr(scripts, name, None)):
            errors.append(checks.Error(f"lua/{name}.lua has no wrapper scripts.{name}()", id="claudebench.E001"))
    return errors


@checks.register()
def handlers_follow_naming_rule(app_configs, **kwargs):
    from claudebench.core import registry

    errors = []
    for spec in registry.specs():
        if not registry.EVENT_NAME.match(spec.event):
            errors.append(checks.Error(f"handler {spec.event!r} breaks the naming rule", id="claudebench.E002"))
    return errors
