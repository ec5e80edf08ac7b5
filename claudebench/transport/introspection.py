"""Introspection documents: `GET /`, `/routes`, `/handlers`, `/schemas/{event}` (SPEC §2.1, §2.4)."""

from __future__ import annotations

from typing import Any

from claudebench import __version__
from claudebench.core import registry
from claudebench.core.clock import iso_ms, now_ms
from claudebench.core.registry import HandlerSpec
from claudebench.core.schema import json_schema


def liveness() -> dict[str, Any]:
    return {"status": "healthy", "service": "claudebench", "version": __version__,
            "timestamp": iso_ms(now_ms())}


def _route(spec: HandlerSpec) -> dict[str, Any]:
    entry = {"method": "POST", "path": spec.rest_path, "event": spec.event, "handler": spec.class_name,
             "description": spec.description}
    if spec.full_path != spec.rest_path:
        entry["fullPath"] = spec.full_path
    return entry


def routes() -> dict[str, Any]:
    items = [_route(spec) for spec in registry.specs()]
    return {"total": len(items), "routes": items}


def _limits(spec: HandlerSpec) -> dict[str, Any]:
    limits = spec.limits
    return {"rateLimit": limits.rate, "windowMs": limits.per_ms if limits.rate else None,
            "timeoutMs": limits.timeout_ms, "circuitThreshold": limits.trip_after,
            "circuitOpenMs": limits.open_ms, "cacheTtlSeconds": spec.cache_ttl_s or None}


def _handler(spec: HandlerSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "event": spec.event, "className": spec.class_name, "description": spec.description,
        "persist": spec.persist, "rateLimit": spec.declared_rate_limit,
        "httpRoute": {"method": "POST", "path": spec.rest_path, "event": spec.event},
        "enforced": _limits(spec),
        "mcpVisible": spec.mcp.visible,
    }
    if spec.full_path != spec.rest_path:
        entry["fullPath"] = spec.full_path
    return entry


def handlers() -> dict[str, Any]:
    items = [_handler(spec) for spec in registry.specs()]
    return {"total": len(items), "handlers": items}


async def handlers_with_state(r) -> dict[str, Any]:
    """`handlers()` plus `circuitState` (CLOSED, HALF_OPEN, OPEN) of each handler with a breaker."""
    from claudebench.core.layers import circuit

    specs = registry.specs()
    states = await circuit.states(r, specs)
    items = []
    for spec in specs:
        entry = _handler(spec)
        if spec.event in states:
            entry["circuitState"] = states[spec.event]
        items.append(entry)
    return {"total": len(items), "handlers": items}


def schemas(event: str) -> tuple[int, dict[str, Any]]:
    spec = registry.get(event)
    if spec is None:
        return 404, {"error": "Handler not found", "event": event}
    return 200, {
        "event": spec.event, "className": spec.class_name, "description": spec.description,
        "schemas": {"input": json_schema(spec.input, mode="validation"),
                    "output": json_schema(spec.output, mode="serialization")},
    }
