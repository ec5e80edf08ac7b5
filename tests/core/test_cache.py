"""Cache layer (SPEC §3.4, §16 rows 13–14): read-only handlers only, stable keys, invalidated by
writes in the same scope, fallbacks never stored."""

from __future__ import annotations

import pytest
from pydantic import Field

from claudebench.core import keys, registry
from claudebench.core.errors import CbError, RateLimited
from claudebench.core.layers import cache
from claudebench.core.registry import Limits
from claudebench.core.schema import Out, Schema

pytestmark = pytest.mark.django_db(transaction=True)


class _ReadIn(Schema):
    a: int = 0
    b: int = 0
    fail: bool = False


class _ReadOut(Out):
    value: str
    a: int = 0


class _WriteIn(Schema):
    value: str = Field(min_length=1)


class _WriteOut(Out):
    ok: bool


@pytest.fixture
def store(temp_handler):
    """test.read (cached 60 s, scope 'demo') and test.write (mutating, scope 'demo') over a dict."""
    state = {"value": "v1", "reads": 0}

    async def read(ctx, data):
        state["reads"] += 1
        if data.fail:
            raise RuntimeError("backend down")
        return {"value": state["value"], "a": data.a}

    async def write(ctx, data):
        state["value"] = data.value
        return {"ok": True}

    temp_handler("test.read", read, input=_ReadIn, output=_ReadOut, mutating=False, cache_ttl_s=60,
                 cache_scope=("demo",), limits=Limits(rate=2, trip_after=1, open_ms=60_000),
                 fallback=lambda data: {"value": "fallback"})
    temp_handler("test.write", write, input=_WriteIn, output=_WriteOut, cache_scope=("demo",))
    return state


async def test_repeated_read_is_served_from_the_cache(store, call, redis, settle):
    first = await call("test.read", {"a": 1, "b": 2})
    await settle()                                           # the entry is written off the request path
    again = await call("test.read", {"b": 2, "a": 1})        # same input, other key order: same entry
    assert first == again == {"value": "v1", "a": 1}
    assert store["reads"] == 1
    digest = cache.digest({"a": 1, "b": 2, "fail": False})
    assert await redis.exists(keys.cache_entry("test.read", digest))
    stats = await redis.hgetall(keys.METRICS_CACHE_HANDLER)
    assert (stats["hits"], stats["misses"], stats["hitRate"]) == ("1", "1", "50.00")


async def test_a_hit_takes_no_rate_limit_slot(store, call, settle):
    await call("test.read", {"a": 5}, session_id="c")
    await settle()
    for _ in range(5):                                       # limit is 2: only hits get through
        await call("test.read", {"a": 5}, session_id="c")
    await call("test.read", {"a": 6}, session_id="c")        # a miss takes the second slot
    with pytest.raises(RateLimited):
        await call("test.read", {"a": 7}, session_id="c")


async def test_a_write_invalidates_cached_reads(store, call, settle):
    assert (await call("test.read", {}))["value"] == "v1"
    await settle()
    assert (await call("test.read", {}))["value"] == "v1"
    await call("test.write", {"value": "v2"})
    assert (await call("test.read", {}))["value"] == "v2"    # right after the write answers
    await settle()
    assert (await call("test.read", {}))["value"] == "v2"
    assert store["reads"] == 2


async def test_a_read_computed_before_a_write_is_not_served_after_it(store, call, redis, settle):
    """The entry carries the scope generation read at admission, before the body ran."""
    tag_before = await redis.get(keys.cache_version("demo")) or "0"
    await call("test.write", {"value": "v2"})
    stale = cache.entry(tag_before, {"value": "v1", "a": 0})
    await redis.set(keys.cache_entry("test.read", cache.digest({"a": 0, "b": 0, "fail": False})), stale)
    assert (await call("test.read", {}))["value"] == "v2"


async def test_bad_write_input_changes_nothing(store, call, settle):
    await call("test.read", {})
    await settle()
    with pytest.raises(CbError):
        await call("test.write", {"value": ""})
    assert (await call("test.read", {}))["value"] == "v1"
    assert store["reads"] == 1


async def test_fallbacks_are_never_cached(store, limits, call, redis, settle):
    limits("test.read", rate=100)
    with pytest.raises(RuntimeError):
        await call("test.read", {"fail": True})
    await settle()                                           # trip_after=1: open now
    assert (await call("test.read", {"a": 9}))["value"] == "fallback"
    await settle()
    assert await redis.keys("cb:cache:handler:*") == []
    await redis.delete(keys.circuit("test.read", "state"), keys.circuit("test.read", "trips"))
    assert (await call("test.read", {"a": 9}))["value"] == "v1"


def test_mutating_handlers_cannot_declare_a_cache():
    with pytest.raises(ValueError, match="never cached"):
        registry.handler("test.bad_cache", input=_WriteIn, output=_WriteOut, cache_ttl_s=10)


async def test_writers_without_cached_readers_pay_no_invalidation(store, call, redis):
    assert cache.bumped_scopes(registry.get("test.write")) == ("demo",)
    await call("test.write", {"value": "v3"})
    assert await redis.get(keys.cache_version("demo")) == "1"
    assert cache.bumped_scopes(registry.get("task.create")) == ()
