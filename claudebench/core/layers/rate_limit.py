"""Rate-limit layer (SPEC §3.8): a sliding-window log per handler and actor, checked and recorded
atomically in lua/pipeline_admit.lua before the body runs.

Actor: the caller's session id (JSON-RPC `metadata.sessionId`, MCP session), else its client id,
else its network address, else this server's INSTANCE_ID. Nested calls (`ctx.call`) are not
limited: the outer call already took the caller's slot, and charging the inner ones would let a
single todo_write exhaust task.update's 20/min for everyone sharing the actor (SPEC §10.5 note).
They still pass the breaker, timeout, audit and metrics layers.
"""

from __future__ import annotations

import hashlib

from django.conf import settings

from claudebench.core.errors import RateLimited

MAX_ACTOR_LENGTH = 128


def actor(meta) -> str:
    """The rate-limit bucket owner of a call (long ids are hashed to keep keys short)."""
    who = meta.session_id or meta.client_id or meta.client_addr or settings.INSTANCE_ID
    if len(who) > MAX_ACTOR_LENGTH:
        who = "sha256:" + hashlib.sha256(who.encode()).hexdigest()[:32]
    return who


def applies(meta, rate: int | None) -> bool:
    return bool(rate) and meta.depth == 0


def rejected(rate: int, per_ms: int) -> RateLimited:
    return RateLimited(f"Rate limit exceeded: {rate} requests per {per_ms}ms")
