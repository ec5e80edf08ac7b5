"""Stream entries → Event objects: envelopes of cb:stream:* and flat audit entries of cb:audit:*."""

from __future__ import annotations

from typing import Any

import orjson

from claudebench.core import keys
from claudebench.core.clock import ms_from_dt, parse_iso
from events.types import Event


class Malformed(ValueError):
    """A stream entry that is not an event (no `data`, not JSON, not an envelope)."""


def entry_ms(entry_id: str) -> int:
    try:
        return int(entry_id.split("-", 1)[0])
    except ValueError:
        return 0


def decode(stream: str, entry_id: str, fields: dict[str, str]) -> Event:
    """One entry of `stream` as an Event; raises Malformed for anything else."""
    if stream.startswith(keys.AUDIT_PREFIX):
        return _audit(stream, entry_id, fields)
    raw = fields.get("data")
    if raw is None:
        raise Malformed("entry has no data field")
    try:
        env = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"data is not JSON: {exc}") from None
    if not isinstance(env, dict) or not isinstance(env.get("id"), str) or not isinstance(env.get("type"), str):
        raise Malformed("data is not an event envelope")
    metadata = env.get("metadata") if isinstance(env.get("metadata"), dict) else {}
    ts = env.get("timestamp")
    return Event(
        id=env["id"], type=env["type"], payload=env.get("payload"), metadata=metadata,
        timestamp=ts if isinstance(ts, int) else entry_ms(entry_id), stream=stream, entry_id=entry_id,
        kind="request" if metadata.get("kind") == "request" else "event", fields=fields,
    )


def _json_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _audit(stream: str, entry_id: str, fields: dict[str, str]) -> Event:
    """SPEC §3.6 audit entries: general (action/actor/result…), hook decisions, per-tool decisions."""
    payload: dict[str, Any] = {k: (_json_or_text(v) if k in ("metadata", "params", "modified") else v)
                               for k, v in fields.items() if k != "requeuedFor"}
    if stream == keys.AUDIT_GENERAL:
        event_type = fields.get("action") or "audit"
    else:
        tool = fields.get("tool") or stream.rsplit(":", 1)[-1]
        event_type = f"hook.{tool}"
    metadata: dict[str, Any] = {}
    inner = payload.get("metadata")
    if isinstance(inner, dict) and isinstance(inner.get("correlationId"), str):
        metadata["correlationId"] = inner["correlationId"]
    actor = fields.get("actor") or fields.get("instanceId") or fields.get("sessionId")
    if actor:
        metadata["actor"] = actor
    if "requeuedFor" in fields:
        metadata["requeuedFor"] = fields["requeuedFor"]
    try:
        ts = ms_from_dt(parse_iso(fields["timestamp"]))
    except (KeyError, ValueError):
        ts = int(fields["timestamp"]) if fields.get("timestamp", "").isdigit() else entry_ms(entry_id)
    return Event(id=f"{stream}/{entry_id}", type=event_type, payload=payload, metadata=metadata, timestamp=ts,
                 stream=stream, entry_id=entry_id, kind="audit", fields=fields)


def actor_of(event: Event) -> str:
    """Who caused it: clientId/sessionId/instanceId/actor, else the first `…By` metadata field."""
    md = event.metadata
    for name in ("actor", "clientId", "sessionId", "instanceId"):
        if isinstance(md.get(name), str) and md[name]:
            return md[name]
    for name, value in md.items():
        if name.endswith("By") and isinstance(value, str) and value:
            return value
    return ""
