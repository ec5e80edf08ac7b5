"""Cache layer (SPEC §3.4) for read-only handlers with `cache_ttl_s` (SPEC §16 row 13).

Key: `cb:cache:handler:{event}:{first 16 hex of sha256(stable JSON of the validated input)}`,
stable meaning sorted keys. The read happens inside lua/pipeline_admit.lua; the write after a miss
inside lua/pipeline_outcome.lua. Fallback answers are never stored (SPEC §16 row 14).

Invalidation by scope generations. Every handler has cache scopes (`cache_scope` on the
declaration, default: its domain). A cached entry is stored as `<tag>|<json>`, where the tag is
the generations of its scopes read at admission, before the body ran. A mutating handler bumps
its scopes' generations (`cb:cache:version:{scope}`) after its body ran, before it answers. An
entry computed from data older than a write therefore carries an old tag and is never served
again: `config.set` drops `config.get` answers, any task write drops cached task reads. The bump
is one INCR round trip, paid only by writers whose scopes have a cached reader registered.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from claudebench.core import bus, keys, registry
from claudebench.core.registry import HandlerSpec


def scopes(spec: HandlerSpec) -> tuple[str, ...]:
    return spec.cache_scope if spec.cache_scope is not None else (spec.domain,)


def cached(spec: HandlerSpec) -> bool:
    return not spec.mutating and spec.cache_ttl_s > 0


def digest(wire_input: Any) -> str:
    body = orjson.dumps(wire_input, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()[:16]


def entry(tag: str, wire_output: dict[str, Any]) -> str:
    return f"{tag}|{bus.to_json(wire_output)}"


@cache
def _read_scopes() -> frozenset[str]:
    """Scopes that some registered cached reader depends on (the registry is fixed after load)."""
    return frozenset(s for spec in registry.specs() if cached(spec) for s in scopes(spec))


def bumped_scopes(spec: HandlerSpec) -> tuple[str, ...]:
    """The scopes a mutating handler must invalidate: its own that have a cached reader."""
    if not spec.mutating:
        return ()
    readers = _read_scopes()
    return tuple(s for s in scopes(spec) if s in readers)


async def invalidate(r, scope_names: tuple[str, ...]) -> None:
    if len(scope_names) == 1:
        await r.incr(keys.cache_version(scope_names[0]))
        return
    async with r.pipeline(transaction=False) as pipe:
        for scope in scope_names:
            pipe.incr(keys.cache_version(scope))
        await pipe.execute()


def forget_registry() -> None:
    """Tests that register handlers on the fly call this so the reader scopes are recomputed."""
    _read_scopes.cache_clear()
