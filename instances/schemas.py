"""Input and output models of the system handlers (SPEC §5.3.3)."""

from __future__ import annotations

from typing import Literal

from claudebench.core.schema import Out


class Services(Out):
    redis: bool
    postgres: bool
    mcp: bool


class SystemHealthOut(Out):
    status: Literal["healthy", "degraded", "unhealthy"]
    services: Services
