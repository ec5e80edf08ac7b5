"""Event bus publish path (SPEC §4.1–4.2): one envelope, written to its stream and published on
its bare-type channel, exactly once per event id.

The subscriber side (durable consumer groups, retries, dead letters) lives in events/.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import orjson
from django.conf import settings

from claudebench.core import keys, scripts
from claudebench.core.clock import event_id as new_event_id
from claudebench.core.clock import now_ms
from claudebench.core.redis import get_redis

log = logging.getLogger("claudebench.core.bus")


def to_json(value: Any) -> str:
    """Compact JSON text of an envelope. orjson writes at most 254 nesting levels, fewer than the
    parser accepts (CB_MAX_JSON_DEPTH) once the envelope wraps a request; the standard library
    writes those (same JSON, slower) instead of failing the call with -32603."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def envelope(
    event_type: str, payload: Any, metadata: dict[str, Any] | None = None, *,
    id: str | None = None, timestamp: int | None = None,
) -> dict[str, Any]:
    """The wire envelope: {id, type, payload, metadata?, timestamp} (SPEC §4.1)."""
    ts = now_ms() if timestamp is None else timestamp
    env: dict[str, Any] = {"id": id or new_event_id(ts), "type": event_type, "payload": payload}
    if metadata is not None:
        env["metadata"] = metadata
    env["timestamp"] = ts
    return env


def _metadata(metadata: dict[str, Any] | None, correlation_id: str | None,
              partition_key: str | None = None) -> dict[str, Any] | None:
    if correlation_id is not None:
        metadata = {**(metadata or {}), "correlationId": correlation_id}
    if partition_key is not None:
        metadata = {**(metadata or {}), "partitionKey": partition_key}
    return metadata


# A payload value no caller can guess (a NUL-framed random token), and how it reads as JSON.
_SLOT = f"\x00{uuid.uuid4().hex}\x00"
_SLOT_JSON = orjson.dumps(_SLOT).decode()[1:-1]


def template(event_type: str, payload: dict[str, Any], slot: str, metadata: dict[str, Any] | None = None, *,
             correlation_id: str | None = None) -> tuple[str, str, str]:
    """An envelope whose `payload[slot]` (a string) a Lua script fills in: (event id, JSON text
    before the value, JSON text after it). For a script that decides a value (a task id) and
    publishes the event in the same round trip: it sends before .. value .. after, so the value
    must need no JSON escaping."""
    env = envelope(event_type, {**payload, slot: _SLOT}, _metadata(metadata, correlation_id))
    before, _, after = to_json(env).partition(_SLOT_JSON)
    return env["id"], before, after


def prepare(
    event_type: str, payload: Any, metadata: dict[str, Any] | None = None, *,
    id: str | None = None, correlation_id: str | None = None, partition_key: str | None = None,
) -> tuple[dict[str, Any], str]:
    """The envelope of one event and its JSON text; raises TypeError / ValueError for a payload or
    metadata that JSON cannot carry, before anything is sent."""
    metadata = _metadata(metadata, correlation_id, partition_key)
    env = envelope(event_type, payload, metadata, id=id)
    return env, to_json(env)


async def publish(
    event_type: str, payload: Any, metadata: dict[str, Any] | None = None, *,
    id: str | None = None, correlation_id: str | None = None, partition_key: str | None = None,
) -> str:
    """Publish one event; returns its id once it is stored. A repeated id is dropped silently
    (SPEC §4.2 step 2). The buffered publish of the events bus is events/outbox.py."""
    env, body = prepare(event_type, payload, metadata, id=id, correlation_id=correlation_id,
                        partition_key=partition_key)
    r = get_redis()
    delivered, _ = await scripts.exactly_once_delivery(
        r, event_id=env["id"], event_type=event_type, envelope=body,
        maxlen=settings.CB_STREAM_MAXLEN, stream_ttl_s=settings.CB_STREAM_TTL_S,
        marker_ttl_s=settings.CB_PROCESSED_EVENT_TTL_S,
    )
    if not delivered:
        log.info("duplicate event %s (%s) dropped", env["id"], event_type)
        return env["id"]
    if partition_key is not None:
        await scripts.partition_event(
            r, partition_key=partition_key, event_id=env["id"], now_ms=env["timestamp"], envelope=body
        )
    return env["id"]


def publish_gated(
    event_type: str, payload: Any, metadata: dict[str, Any] | None = None, *, gate: str,
    id: str | None = None, correlation_id: str | None = None,
) -> Any:
    """Queue one event's delivery now, to happen only if `gate` is set: for a handler whose writes
    go in the same round trip as its admission (core/pipeline.py, Prepared). Await the result for
    the script's reply (scripts.exactly_once_delivery_soon)."""
    env, body = prepare(event_type, payload, metadata, id=id, correlation_id=correlation_id)
    return scripts.exactly_once_delivery_soon(
        get_redis(), gate=gate, event_id=env["id"], event_type=event_type, envelope=body,
        maxlen=settings.CB_STREAM_MAXLEN, stream_ttl_s=settings.CB_STREAM_TTL_S,
        marker_ttl_s=settings.CB_PROCESSED_EVENT_TTL_S,
    )


async def record_request(event: str, payload: Any, *, client_id: str | None) -> None:
    """Append the request record of one handler call to `cb:stream:{event}` (SPEC §3.2 step 3).

    Marked `kind: request` so replay tools and consumers never mistake it for a domain event and
    never re-execute it (SPEC §4.7).
    """
    metadata: dict[str, Any] = {"kind": "request"}
    if client_id:
        metadata["clientId"] = client_id
    body = to_json(envelope(event, payload, metadata))
    stream = keys.stream(event)
    async with get_redis().pipeline(transaction=False) as pipe:
        pipe.xadd(stream, {"data": body}, maxlen=settings.CB_STREAM_MAXLEN, approximate=True)
        pipe.expire(stream, settings.CB_STREAM_TTL_S)
        await pipe.execute()


async def recent(event_type: str, limit: int = 100) -> list[dict[str, Any]]:
    """Newest-first envelopes of one stream (SPEC §4.3 getEvents)."""
    entries = await get_redis().xrevrange(keys.stream(event_type), count=limit)
    return [orjson.loads(fields["data"]) for _, fields in entries if "data" in fields]
