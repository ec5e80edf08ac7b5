"""The layers of SPEC §3.2 step 5, one module each, composed by core/pipeline.py.

Before the body, one script (lua/pipeline_admit.lua) writes the request record and runs the cache
read, the rate limiter and the breaker admission: one Redis round trip (admission.py). The body
then runs under its timeout (timeout.py). After it, one script (lua/pipeline_outcome.lua) does the
breaker outcome, counters, audit and cache write, fired off the request path (outcome.py).
"""

from __future__ import annotations

import dataclasses

from django.conf import settings

from claudebench.core.registry import HandlerSpec, Limits


def limits_of(spec: HandlerSpec) -> Limits:
    """The handler's declared Limits with settings.CB_LIMIT_OVERRIDES applied (read per call)."""
    override = settings.CB_LIMIT_OVERRIDES.get(spec.event)
    if not override:
        return spec.limits
    return dataclasses.replace(spec.limits, **override)
