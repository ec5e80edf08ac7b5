"""Scopes and the principal of a call. No model imports: the pipeline imports this on every process.

A handler declares the scope it needs (`@handler(..., scope=ADMIN)`, default agent); a caller's
token carries one. Ranks: agent < operator < admin.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from claudebench.core.errors import Unauthorized

AGENT, OPERATOR, ADMIN = "agent", "operator", "admin"
SCOPES = (AGENT, OPERATOR, ADMIN)
SCOPE_RANK = {name: rank for rank, name in enumerate(SCOPES)}


@dataclass(frozen=True)
class Principal:
    scope: str
    token_id: int | None = None
    loopback: bool = False

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}" if self.token_id is not None else "loopback"


# The principal of the request being served, for surfaces whose calls reach the pipeline through
# code we do not own (the MCP SDK): the router sets it, the pipeline falls back to it.
current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("cb_principal", default=None)


def as_principal(value: Any) -> Principal | None:
    """A principal carried through a queue (background hand-off) comes back as a dict."""
    if value is None or isinstance(value, Principal):
        return value
    return Principal(**value)


def require(principal: Principal | None, needed: str, event: str) -> None:
    """Raise Unauthorized (-32002 / 403) when `principal` may not call a handler needing `needed`.
    No principal = an internal caller (workers, subscribers, nested calls of trusted code)."""
    if principal is None or SCOPE_RANK.get(principal.scope, -1) >= SCOPE_RANK[needed]:
        return
    raise Unauthorized(f"{event} needs the {needed} scope",
                       data=f"{event} needs a token with the {needed} scope; this caller has {principal.scope}")
