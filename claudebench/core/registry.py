"""The handler registry: one `@handler` declaration per use case (STYLE §2, SPEC §3.1).

The decorator records a HandlerSpec and returns the function unchanged. Everything else derives
from the spec: the JSON-RPC method, the REST routes, the pub/sub trigger channel, the MCP tool,
and the introspection entries.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from pydantic import BaseModel

from claudebench.core.schema import Schema

EVENT_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")

# SPEC §2.3: registration order decides REST collisions and the order of /routes, /handlers,
# system.discover and MCP tools, whatever order the modules are imported in.
SPEC_ORDER = [
    "task.create", "task.update", "task.assign", "task.unassign", "task.claim", "task.complete",
    "task.list", "task.delete", "task.context", "task.decompose", "task.create_project",
    "task.get_project", "task.create_attachment", "task.list_attachments", "task.get_attachment",
    "task.get_attachments_batch", "task.delete_attachment",
    "hook.pre_tool", "hook.post_tool", "hook.user_prompt", "hook.todo_write", "hook.agent_stop",
    "hook.notification", "hook.pre_compact",
    "system.health", "system.register", "system.heartbeat", "system.get_state", "system.metrics",
    "system.batch.process", "system.quorum.vote", "system.check_health", "system.discover",
    "system.unregister", "system.redis.keys", "system.redis.get", "system.postgres.tables",
    "system.postgres.query", "system.flush",
    "swarm.decompose", "swarm.context", "swarm.resolve", "swarm.synthesize", "swarm.assign",
    "swarm.create_project",
    "docs.list", "docs.get",
    "session.state.get", "session.rehydrate", "session.snapshot.create",
    "git.context.get", "git.auto_commit.notify",
    "config.get", "config.set",
    "test.circuit",
]
_RANK = {name: i for i, name in enumerate(SPEC_ORDER)}


@dataclass(frozen=True)
class Limits:
    """Enforced resilience numbers (SPEC §5.2 'Enf RL', 'TO', 'CB'); None = layer off."""

    rate: int | None = None
    per_ms: int = 60_000
    timeout_ms: int | None = None
    trip_after: int | None = None
    open_ms: int | None = None


@dataclass(frozen=True)
class Mcp:
    """How the handler appears as an MCP tool (SPEC §2.7, §3.1)."""

    visible: bool = True
    title: str | None = None
    tags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    prerequisites: tuple[str, ...] = ()
    use_cases: tuple[str, ...] = ()
    examples: tuple[dict[str, Any], ...] = ()


Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class HandlerSpec:
    event: str
    fn: Handler
    input: type[Schema]
    output: type[BaseModel]
    persist: bool = False
    declared_rate_limit: int | None = None
    limits: Limits = field(default_factory=Limits)
    cache_ttl_s: int = 0
    mcp: Mcp = field(default_factory=Mcp)
    class_name: str = ""
    # Value answered while the breaker is open; only read-only and hook handlers have one.
    fallback: Callable[[Any], Any] | None = None
    mutating: bool = True
    description: str = ""
    # Cache scopes (core/layers/cache.py): a read-only handler's cached answers are dropped when a
    # mutating handler sharing one of its scopes runs. None = the handler's domain; () = none.
    cache_scope: tuple[str, ...] | None = None
    # Token scope a caller needs (issue 10, claudebench/security/scopes.py): agent, operator, admin.
    scope: str = "agent"
    # Optional `async prepare(ctx, data) -> core.pipeline.Prepared`: work done before admission
    # whose Redis writes are queued behind the admission script, in its round trip, and done only
    # if the call is let through; the body finds it as ctx.prepared (None when prepare failed).
    prepare: Callable[[Any, Any], Awaitable[Any]] | None = None

    @property
    def domain(self) -> str:
        return self.event.split(".", 1)[0]

    @property
    def rest_path(self) -> str:
        """The original's route: first two segments only (SPEC §2.3)."""
        first, second = self.event.split(".")[:2]
        return f"/{first}/{second}"

    @property
    def full_path(self) -> str:
        return "/" + self.event.replace(".", "/")

    @property
    def mcp_name(self) -> str:
        return self.event.replace(".", "__")


_HANDLERS: dict[str, HandlerSpec] = {}
_loaded = False


def _class_name(event: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", event)) + "Handler"


def handler(
    event: str, *, input: type[Schema], output: type[BaseModel], persist: bool = False,
    declared_rate_limit: int | None = None, limits: Limits | None = None, cache_ttl_s: int = 0,
    mcp: Mcp | None = None, class_name: str | None = None, fallback: Callable[[Any], Any] | None = None,
    mutating: bool = True, cache_scope: tuple[str, ...] | None = None, scope: str = "agent",
    prepare: Callable[[Any, Any], Awaitable[Any]] | None = None,
) -> Callable[[Handler], Handler]:
    """Declare a handler. See STYLE §2 for an example."""
    if not EVENT_NAME.match(event):
        raise ValueError(f"handler name {event!r} does not match {EVENT_NAME.pattern}")
    if mutating and cache_ttl_s:
        raise ValueError(f"{event}: mutating handlers are never cached (SPEC §3.4)")
    if scope not in ("agent", "operator", "admin"):
        raise ValueError(f"{event}: scope must be agent, operator or admin")
    if prepare is not None and cache_ttl_s:
        raise ValueError(f"{event}: a cached handler cannot write during its admission")

    def register(fn: Handler) -> Handler:
        if event in _HANDLERS and _HANDLERS[event].fn is not fn:
            raise ValueError(f"handler {event} registered twice")
        doc = (fn.__doc__ or "").strip()
        _HANDLERS[event] = HandlerSpec(
            event=event, fn=fn, input=input, output=output, persist=persist,
            declared_rate_limit=declared_rate_limit, limits=limits or Limits(),
            cache_ttl_s=cache_ttl_s, mcp=mcp or Mcp(), class_name=class_name or _class_name(event),
            fallback=fallback, mutating=mutating, cache_scope=cache_scope, scope=scope, prepare=prepare,
            description=doc.splitlines()[0] if doc else f"Execute {event} event handler",
        )
        return fn

    return register


def load() -> None:
    """Import the handler modules named in settings (idempotent)."""
    global _loaded
    if _loaded:
        return
    modules = list(settings.CB_HANDLER_MODULES)
    if settings.CB_ENABLE_TEST_HANDLERS:
        modules.append("claudebench.test_handlers")
    for module in modules:
        importlib.import_module(module)
    _loaded = True


def specs() -> list[HandlerSpec]:
    """Registered handlers in SPEC order (unknown names last, in declaration order)."""
    load()
    found = [s for s in _HANDLERS.values() if s.event != "test.circuit" or settings.CB_ENABLE_TEST_HANDLERS]
    return sorted(found, key=lambda s: _RANK.get(s.event, len(SPEC_ORDER)))


def get(event: str) -> HandlerSpec | None:
    load()
    spec = _HANDLERS.get(event)
    if spec is not None and spec.event == "test.circuit" and not settings.CB_ENABLE_TEST_HANDLERS:
        return None
    return spec
