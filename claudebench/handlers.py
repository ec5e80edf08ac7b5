"""Small utility domains: config.* (SPEC §5.3.7). docs.* arrive with their issue."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import Field

from claudebench.core import keys
from claudebench.core.pipeline import Ctx
from claudebench.core.registry import Limits, Mcp, handler
from claudebench.core.schema import Out, Schema, opt


class ConfigGetIn(Schema):
    key: Annotated[str, Field(min_length=1)]


class ConfigGetOut(Out):
    key: str
    value: Any
    exists: bool


class ConfigSetIn(Schema):
    key: Annotated[str, Field(min_length=1)]
    value: Any


class ConfigSetOut(Out):
    key: str
    value: Any
    success: bool
    error: str | None = opt()


def stored_text(value: Any) -> str:
    """SPEC §5.3.7: JSON for objects and arrays, the JS String(value) of anything else."""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parsed(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@handler(
    "config.get", input=ConfigGetIn, output=ConfigGetOut, class_name="ConfigGetHandler",
    declared_rate_limit=100, limits=Limits(rate=100, timeout_ms=2_000, trip_after=5, open_ms=30_000),
    cache_ttl_s=10, mutating=False,
    fallback=lambda data: {"key": data.key, "value": None, "exists": False},
    mcp=Mcp(title="Read a setting", tags=("config",)),
)
async def config_get(ctx: Ctx, data: ConfigGetIn) -> ConfigGetOut:
    """Read one runtime setting (for example todowrite.autocreate)."""
    text = await ctx.redis.get(keys.config(data.key))
    return ConfigGetOut(key=data.key, value=None if text is None else parsed(text), exists=text is not None)


@handler(
    "config.set", input=ConfigSetIn, output=ConfigSetOut, class_name="ConfigSetHandler",
    scope="admin",  # issue 10: dangerous, admin tokens only
    declared_rate_limit=50, limits=Limits(rate=50, timeout_ms=2_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Change a setting", tags=("config",), examples=(
        {"description": "Stop turning TodoWrite lists into tasks",
         "input": {"key": "todowrite.autocreate", "value": False}},
    )),
)
async def config_set(ctx: Ctx, data: ConfigSetIn) -> ConfigSetOut:
    """Change one runtime setting; config.get answers the new value at once."""
    r = ctx.redis
    # SPEC §16 row 45: config.get's cached answers are dropped by the cache layer, which bumps the
    # "config" cache scope after this body runs (core/layers/cache.py).
    await r.set(keys.config(data.key), stored_text(data.value))
    await ctx.publish("config.changed", {"key": data.key, "value": data.value})
    return ConfigSetOut(key=data.key, value=data.value, success=True)
