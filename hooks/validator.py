"""The hook validator (SPEC §10.1–10.3, §18.6): decide allow / block / modify for one tool call.

Rules come from PostgreSQL (HookRule), cached in Redis as one JSON document stamped with the
rules version; saving or deleting a rule bumps the version (hooks/signals.py), so every process
sees an operator's change on its next call, without a restart. Each process keeps the compiled
form of the last document it read.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from psycopg import sql
from redis.asyncio import Redis

from claudebench.core import keys, pg, redis_mux, scripts
from claudebench.core.clock import iso_ms, now_ms
from hooks.rules import RuleSet, compile_rules, default_rule_rows, rows_from_env

log = logging.getLogger("claudebench.hooks.validator")

_RULE_FIELDS = ("group", "tools", "severity", "action", "pattern", "message", "replacement",
                "case_insensitive", "enabled", "position")
_WRITABLE_FIELDS = ("command", "cmd", "script")
_COMMAND_FIELDS = ("command", "cmd", "script", "file_path", "path")
# A safe pattern only vouches for one simple command: chained or substituted commands go on to
# the rules (the original let `ls; rm -rf /` through on its `^ls` whitelist entry).
_CHAINING = re.compile(r"[;&|`\n]|\$\(")
_AUDIT_TTL_S = 86_400
_RECORD_TTL_S = 300


@dataclass
class Decision:
    allow: bool
    reason: str | None = None
    modified: Any = None
    warnings: list[str] = field(default_factory=list)
    severity: str | None = None
    group: str | None = None
    source: str = "validated"

    def wire(self) -> dict[str, Any]:
        """The answer's shape: keys appear only when they carry something (SPEC §18.2)."""
        out: dict[str, Any] = {"allow": self.allow}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.modified is not None:
            out["modified"] = self.modified
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if not self.allow and self.group:
            out["metadata"] = {"severity": self.severity, "ruleMatched": self.group}
        return out


class _Compiled:
    checked_at = 0.0
    raw: str | None = None
    version: str | None = None
    rules: RuleSet | None = None


async def _rows_from_pg() -> list[dict[str, Any]]:
    from hooks.models import HookRule

    overridden = rows_from_env(settings.CB_HOOK_VALIDATION_RULES, settings.CB_HOOK_SAFE_PATTERNS)
    if overridden is not None:
        return overridden

    cols = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(pg.column(HookRule, name), sql.Identifier(name)) for name in _RULE_FIELDS
    )
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}, {}, {}").format(
        cols, pg.table(HookRule), pg.column(HookRule, "group"), pg.column(HookRule, "position"),
        pg.column(HookRule, "id"),
    )
    rows = await pg.fetch(query)
    return rows if rows else default_rule_rows()  # an empty table means the built-in defaults


async def rules(r: Redis) -> RuleSet:
    """The current rules: one MGET at most every CB_HOOK_RULES_REFRESH_MS, PostgreSQL only after
    a change (so an operator's edit applies within that interval, without a restart)."""
    refresh_s = settings.CB_HOOK_RULES_REFRESH_MS / 1000
    now = time.monotonic()
    if _Compiled.rules is not None and now < _Compiled.checked_at + refresh_s:
        return _Compiled.rules
    # On the multiplexed connection: the hot path's only other command besides its scripts.
    raw, version = await redis_mux.of(r).execute("MGET", keys.HOOK_RULES, keys.HOOK_RULES_VERSION)
    _Compiled.checked_at = now
    version = version or "0"
    if raw is not None and raw == _Compiled.raw and version == _Compiled.version and _Compiled.rules is not None:
        return _Compiled.rules
    doc = orjson.loads(raw) if raw is not None else None
    if doc is None or doc.get("version") != version:
        # Stamp the document with the version read *before* PostgreSQL: a change landing during
        # the read bumps the version again, so the next call reloads.
        doc = {"version": version, "rules": await _rows_from_pg()}
        raw = orjson.dumps(doc).decode()
        await r.set(keys.HOOK_RULES, raw)
    _Compiled.raw, _Compiled.version, _Compiled.rules = raw, doc["version"], compile_rules(doc["rules"])
    return _Compiled.rules


def command_of(params: Any) -> tuple[str, str | None]:
    """SPEC §10.2 step 1: the text the rules look at, and the field it came from."""
    if isinstance(params, str):
        return params, None
    if isinstance(params, dict):
        for name in _COMMAND_FIELDS:
            value = params.get(name)
            if isinstance(value, str) and value:
                return value, name
        return orjson.dumps(params).decode(), None
    return "", None


def slug(text: str) -> str:
    """SPEC §6.8: lowercased, whitespace runs → '-', only [a-z0-9-], no repeated or edge '-'."""
    s = re.sub(r"\s+", "-", text.lower())
    s = re.sub(r"[^a-z0-9-]", "", s)
    return re.sub(r"-+", "-", s).strip("-")


def simplified(tool: str, command: str) -> str:
    if "rm -rf" in command:
        return "rm-rf"
    if command.startswith("ls"):
        return "ls"
    if tool == "write" and "/etc/" in command:
        return "system"
    first = command.split()[0] if command.split() else ""
    return re.sub(r"[^a-z0-9-]", "", first.lower())


def _decide(ruleset: RuleSet, tool: str, params: Any) -> tuple[Decision, list[tuple[str, Any]]]:
    """Pure decision plus the side records to write (kind, detail)."""
    command, source_field = command_of(params)
    records: list[tuple[str, Any]] = []
    if command and not _CHAINING.search(command):
        for rule in ruleset.safe:
            if rule.applies_to(tool) and rule.regex.search(command):
                return Decision(allow=True, source="safe_pattern"), records
    current, modified = command, False
    decision = Decision(allow=True)
    for rule in ruleset.ordered:
        if not rule.applies_to(tool):
            continue
        match = rule.regex.search(current)
        if match is None:
            continue
        if rule.action == "block":
            reason = rule.message.replace("{{match}}", match.group(0))
            records.append(("block", (rule, reason, match.group(0))))
            return Decision(allow=False, reason=reason, severity=rule.severity, group=rule.group,
                            source=rule.group), records
        if rule.action == "warn":
            text = rule.message.replace("{{match}}", match.group(0))
            decision.warnings.append(text)
            records.append(("warn", (rule, text)))
        elif rule.action == "modify" and rule.replacement is not None:
            current = rule.regex.sub(rule.replacement, current)
            modified = True
            records.append(("modify", rule))
    if modified:
        if isinstance(params, str):
            decision.modified = current
        elif isinstance(params, dict) and source_field in _WRITABLE_FIELDS:
            decision.modified = {**params, source_field: current}
    return decision, records


async def validate(r: Redis, tool: str, params: Any, *, actor: str, session_id: str | None = None,
                   instance_id: str | None = None) -> Decision:
    """Decide, then write the validator's records in one pipeline (SPEC §6.8, §3.6)."""
    decision, records = await decide(r, tool, params)
    await record(r, tool, params, decision, records, actor=actor, session_id=session_id, instance_id=instance_id)
    return decision


async def decide(r: Redis, tool: str, params: Any) -> tuple[Decision, list[tuple[str, Any]]]:
    """The decision and the side records `record()` writes (no Redis writes here)."""
    return _decide(await rules(r), tool, params)


async def record(r: Redis, tool: str, params: Any, decision: Decision, records: list[tuple[str, Any]], *,
                 actor: str, session_id: str | None = None, instance_id: str | None = None) -> None:
    """Write the validator's records (SPEC §6.8, §3.6): one pipelined round trip."""
    await _records(r, tool, params, decision, records, actor=actor, session_id=session_id,
                   instance_id=instance_id).execute()


def record_gated(r: Redis, gate: str, tool: str, params: Any, decision: Decision, records: list[tuple[str, Any]], *,
                 actor: str, session_id: str | None = None, instance_id: str | None = None) -> Awaitable[bool]:
    """The same records, queued now to be written only if `gate` is set (core/pipeline.Prepared);
    the result says whether they were."""
    batch = _records(r, tool, params, decision, records, actor=actor, session_id=session_id, instance_id=instance_id)
    return scripts.gated_writes(r, gate, batch.commands)


def _records(r: Redis, tool: str, params: Any, decision: Decision, records: list[tuple[str, Any]], *,
             actor: str, session_id: str | None, instance_id: str | None) -> redis_mux.Batch:
    command, _ = command_of(params)
    t = tool.lower()
    now = now_ms()
    iso = iso_ms(now)
    counters: list[str] = []
    pipe = redis_mux.Batch(r)  # one round trip on the multiplexed connection
    pipe.set(keys.validation(t, simplified(t, command)), "true", ex=_RECORD_TTL_S)
    entry = {"tool": tool, "decision": "allow" if decision.allow else "block", "timestamp": str(now),
             "source": decision.source}
    if decision.reason:
        entry["reason"] = decision.reason
    if session_id:
        entry["sessionId"] = session_id
    if instance_id:
        entry["instanceId"] = instance_id
    pipe.xadd(keys.AUDIT_HOOK_DECISIONS, entry, maxlen=10_000, approximate=True)
    pipe.expire(keys.AUDIT_HOOK_DECISIONS, _AUDIT_TTL_S)
    for kind, detail in records:
        if kind == "block":
            rule, reason, matched = detail
            pipe.set(keys.rejection_reason(t, slug(command)), reason, ex=_RECORD_TTL_S)
            counters.append(f"hook.validation.blocked.{rule.severity}")
            _audit(pipe, "hook.validation.blocked", actor, tool, "blocked", f"Pattern matched: {matched}",
                   {"pattern": rule.regex.pattern, "severity": rule.severity}, iso)
        elif kind == "warn":
            rule, text = detail
            warn_slug = "large-file" if "large-file" in command else slug(command)
            pipe.lpush(keys.warnings(t, warn_slug), text)
            pipe.ltrim(keys.warnings(t, warn_slug), 0, 99)
            pipe.expire(keys.warnings(t, warn_slug), _RECORD_TTL_S)
            pipe.set(keys.validation_blocked(t, warn_slug), "false", ex=_RECORD_TTL_S)
            counters.append(f"hook.validation.warned.{rule.severity}")
            _audit(pipe, "hook.validation.warned", actor, tool, "allowed", text,
                   {"pattern": rule.regex.pattern, "severity": rule.severity}, iso)
        elif kind == "modify":
            rule = detail
            counters.append(f"hook.validation.modified.{rule.severity}")
            _audit(pipe, "hook.validation.modified", actor, tool, "allowed", "Parameters modified",
                   {"pattern": rule.regex.pattern, "severity": rule.severity,
                    "replacement": rule.replacement}, iso)
    if decision.modified is not None:
        pipe.hset(keys.modifications(t), "modified", orjson.dumps(decision.modified).decode())
        pipe.expire(keys.modifications(t), _RECORD_TTL_S)
    if decision.source == "validated":
        counters.append("hook.validation.cache.misses")
    for name in counters:
        pipe.hincrby(keys.METRICS_COUNTERS, name, 1)
    if counters:
        pipe.expire(keys.METRICS_COUNTERS, 3600)
    return pipe


def _audit(pipe, action: str, actor: str, resource: str, result: str, reason: str, metadata: dict, iso: str) -> None:
    pipe.xadd(keys.AUDIT_GENERAL, {"action": action, "actor": actor, "resource": resource, "result": result,
                                   "reason": reason, "metadata": orjson.dumps(metadata).decode(),
                                   "timestamp": iso}, maxlen=10_000, approximate=True)
    pipe.expire(keys.AUDIT_GENERAL, _AUDIT_TTL_S)
