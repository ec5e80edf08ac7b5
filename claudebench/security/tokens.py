"""Issue, look up and revoke API tokens.

Lookup is one Redis GET on the request path: `cb:auth:token:{prefix}` holds the row's digest,
scope and state as JSON. A miss reads PostgreSQL once and fills the key with SET NX; every change
of a row (revoke in the admin, `manage.py revoke_token`, delete) overwrites the key with the new
state at once (signals.py). So a revoked token is refused by every process from its next request,
and a fill racing a revoke can never resurrect it (NX loses to the overwrite, or the overwrite
comes after the fill).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.utils import timezone

from claudebench.core import keys
from claudebench.security.models import ApiToken
from claudebench.security.scopes import SCOPES

TOKEN_PREFIX = "cb_"
CACHE_TTL_S = 300


@dataclass(frozen=True)
class TokenState:
    id: int
    scope: str
    digest: str
    active: bool


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def split(token: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    prefix, sep, secret = token[len(TOKEN_PREFIX):].partition("_")
    if not sep or not (4 <= len(prefix) <= 16) or len(secret) < 20 or not prefix.isalnum():
        return None
    return prefix


def issue(name: str, scope: str) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the token text (shown once, never stored)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken.objects.create(name=name, scope=scope, prefix=prefix, digest=digest_of(token))
    return row, token


def revoke(row: ApiToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])


def _encode(row: ApiToken | None) -> bytes:
    if row is None:
        return b'{"gone":true}'
    return orjson.dumps({"id": row.pk, "scope": row.scope, "digest": row.digest, "active": row.revoked_at is None})


def _decode(raw: bytes | str) -> TokenState | None:
    data = orjson.loads(raw)
    if data.get("gone"):
        return None
    return TokenState(id=data["id"], scope=data["scope"], digest=data["digest"], active=data["active"])


def publish_state(row: ApiToken, *, deleted: bool = False) -> None:
    """Overwrite the cached copy of `row` (sync: admin, commands, signals)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    try:
        client.set(keys.auth_token(row.prefix), _encode(None if deleted else row), ex=CACHE_TTL_S)
    finally:
        client.close()


async def _load(prefix: str) -> ApiToken | None:
    from psycopg import sql

    from claudebench.core import pg

    query = sql.SQL("SELECT id, name, scope, prefix, digest, revoked_at FROM {} WHERE prefix = %s").format(
        pg.table(ApiToken))
    rows = await pg.fetch(query, [prefix])
    if not rows:
        return None
    row = rows[0]
    return ApiToken(id=row["id"], name=row["name"], scope=row["scope"], prefix=row["prefix"],
                    digest=row["digest"], revoked_at=row["revoked_at"])


async def lookup(r, token: str) -> TokenState | None:
    """The active token `token` names, else None (unknown, malformed, wrong secret, revoked)."""
    prefix = split(token)
    if prefix is None:
        return None
    key = keys.auth_token(prefix)
    raw = await r.get(key)
    if raw is None:
        row = await _load(prefix)
        await r.set(key, _encode(row), ex=CACHE_TTL_S, nx=True)
        raw = await r.get(key)  # whatever won: our fill or a concurrent change's overwrite
        if raw is None:
            return None
    state = _decode(raw)
    if state is None or not state.active:
        return None
    if not hmac.compare_digest(state.digest, digest_of(token)):
        return None
    return state


def active_tokens_exist() -> bool:
    return ApiToken.objects.filter(revoked_at__isnull=True).exists()
