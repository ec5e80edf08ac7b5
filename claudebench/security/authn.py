"""Who is calling: one function every machine surface calls with its ASGI scope.

`authenticate(scope)` → Principal, or raises NotAuthenticated (-32002 / HTTP 401):
  * `Authorization: Bearer <token>` naming an active token → that token's scope;
  * a present but bad token is refused, even from loopback (a typo should not silently downgrade);
  * no token from a loopback client address → CB_LOOPBACK_SCOPE (agent by default), unless
    CB_ALLOW_LOOPBACK_ANONYMOUS is false;
  * no token from any other address → refused.
Which scope a handler needs is enforced once, in the pipeline (`require`), for every transport.
"""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings

from claudebench.core.errors import NotAuthenticated
from claudebench.security.scopes import Principal, current, require

__all__ = ["Principal", "authenticate", "current", "is_loopback", "require"]


def is_loopback(addr: str | None) -> bool:
    if not addr:
        return False
    return _is_loopback(addr)


@functools.lru_cache(maxsize=1024)  # asked on every request; clients come from few addresses
def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bearer(scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            text = value.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or ""
            return ""  # another scheme: treated as a bad token
    return None


async def authenticate(scope) -> Principal:
    client = scope.get("client")
    loopback = is_loopback(client[0] if client else None)
    token = bearer(scope)
    if token is not None:
        from claudebench.core.redis import get_redis
        from claudebench.security import tokens

        state = await tokens.lookup(get_redis(), token) if token else None
        if state is None:
            raise NotAuthenticated("Invalid or revoked token", data="the bearer token is unknown, malformed or revoked")
        return Principal(scope=state.scope, token_id=state.id, loopback=loopback)
    if loopback and settings.CB_ALLOW_LOOPBACK_ANONYMOUS:
        return Principal(scope=settings.CB_LOOPBACK_SCOPE, loopback=True)
    raise NotAuthenticated("Authentication required",
                           data="send Authorization: Bearer <token> (issue one with manage.py issue_token)")
