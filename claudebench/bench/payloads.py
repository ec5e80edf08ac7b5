"""Request bodies and answer checks shared by the ceilings and the benchmarks that they bound."""

from __future__ import annotations

import uuid

import orjson

from claudebench.bench.loadgen import BodyFactory


def task_create_body() -> BodyFactory:
    """Bodies for `task.create` over JSON-RPC, each with its own metadata.sessionId.

    PERF.md B1: a session id per request means the rate limiter runs on every call but never
    refuses one. A fresh prefix per load run keeps ids unique across runs within a limiter window.
    """
    prefix = uuid.uuid4().hex[:12].encode()

    def make(n: int) -> bytes:
        return (
            b'{"jsonrpc":"2.0","method":"task.create","params":{"text":"bench task %d","priority":50},'
            b'"id":%d,"metadata":{"sessionId":"bench-%s-%d"}}' % (n, n, prefix, n)
        )

    return make


def task_created(status: int, body: bytes) -> bool:
    """Success: HTTP 200 and a JSON-RPC result whose id starts with `t-`."""
    if status != 200:
        return False
    result = orjson.loads(body).get("result")
    return isinstance(result, dict) and str(result.get("id", "")).startswith("t-")
