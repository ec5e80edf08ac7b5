"""Checks at the edge of the machine surfaces: Host, Origin, JSON nesting depth.

Host: the machine surfaces answer only names in ALLOWED_HOSTS (Django checks its own paths), so
a DNS-rebinding page that points its own name at 127.0.0.1 gets 400. Origin: a browser sends it
on cross-origin requests and on every WebSocket handshake; same-origin and CORS_ORIGIN pass,
any other origin (another site calling into a localhost server) gets 403. Clients that are not
browsers send no Origin and are not affected.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from claudebench.core import metrics
from claudebench.core.errors import ParseError


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


_HOST_MEMO_SIZE = 256
_host_memo: tuple[Any, dict[str, str | None]] = (None, {})


def host_problem(scope) -> str | None:
    global _host_memo
    host = _header(scope, b"host")
    if host is None:
        return None
    # Every request asks about the same few Host values: remember the verdicts, for as long as
    # ALLOWED_HOSTS is the same object (settings overrides replace it).
    allowed = settings.ALLOWED_HOSTS
    owner, memo = _host_memo
    if owner is not allowed:
        memo = {}
        _host_memo = (allowed, memo)
    try:
        return memo[host]
    except KeyError:
        pass
    domain, _port = split_domain_port(host)
    problem = None if domain and validate_host(domain, allowed) else f"Host {host!r} is not in ALLOWED_HOSTS"
    if len(memo) < _HOST_MEMO_SIZE:
        memo[host] = problem
    return problem


def origin_problem(scope) -> str | None:
    origin = _header(scope, b"origin")
    if origin is None:
        return None
    if origin == settings.CORS_ORIGIN:
        return None
    host = _header(scope, b"host")
    parts = urlsplit(origin)
    if host and parts.scheme in ("http", "https", "ws", "wss") and parts.netloc.lower() == host.lower():
        return None  # same origin
    return f"Origin {origin!r} may not call this server (allowed: same origin, {settings.CORS_ORIGIN})"


def _depth(obj: Any, limit: int) -> bool:
    """True when `obj` nests deeper than `limit` arrays/objects (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            if level > limit:
                return True
            stack.extend((v, level + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            if level > limit:
                return True
            stack.extend((v, level + 1) for v in value if isinstance(v, dict | list))
    return False


def check_depth(obj: Any, body: bytes) -> None:
    """Raise ParseError (-32700) when the parsed body nests deeper than CB_MAX_JSON_DEPTH. Bodies
    with fewer brackets than the limit (nearly all) cost two byte counts and no walk."""
    limit = settings.CB_MAX_JSON_DEPTH
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    if _depth(obj, limit):
        too_deep()


def too_deep() -> None:
    metrics.refused("json_depth")
    limit = settings.CB_MAX_JSON_DEPTH
    raise ParseError(data=f"JSON nesting deeper than {limit} levels (CB_MAX_JSON_DEPTH)")
