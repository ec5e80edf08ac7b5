"""The validator's rules: built-in defaults (SPEC §10.1) and their compiled form.

Rules live in PostgreSQL (HookRule, edited in the admin), are cached in Redis as one JSON
document and compiled once per process per document; an empty table means these defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Group order inside one severity follows this list; severities sort critical → low.
SEVERITY_PRIORITY = {"critical": 10, "high": 20, "medium": 30, "low": 40}

_DANGEROUS = "dangerous command pattern detected: {{match}}"
_SYSTEM = "Cannot modify system directory: {{match}}"

# (group, tools, severity, action, [(pattern, message, replacement)], case_insensitive)
DEFAULT_GROUPS: list[tuple[str, list[str], str, str, list[tuple[str, str, str | None]], bool]] = [
    ("safe_patterns", [], "low", "allow", [
        (r"^(ls|pwd|echo|whoami|date|uptime)(\s|$)", "safe command", None),
        (r"^cat\s+(?!.*large-file)[^>]+$", "safe command", None),
        (r"^grep\s+[^>]+$", "safe command", None),
    ], False),
    ("dangerous_operations", ["bash", "shell", "command", "Bash"], "critical", "block", [
        (r"rm\s+-[rf]{2}", _DANGEROUS, None),
        (r"sudo\s+(rm|del)", _DANGEROUS, None),
        (r"(drop|truncate)\s+(database|table|schema)", _DANGEROUS, None),
        (r"format\s+[cd]:", _DANGEROUS, None),
        (r"del\s+/[fs]", _DANGEROUS, None),
    ], True),
    ("system_protection", ["write", "Write", "file.write", "file.delete"], "high", "block", [
        (r"/(etc|sys|boot|proc|dev)/", _SYSTEM, None),
        (r"C:\\(Windows|System32|System)\\", _SYSTEM, None),
    ], True),
    ("privilege_stripping", ["bash", "shell", "command"], "low", "modify", [
        (r"^sudo\s+", "sudo removed", ""),
    ], True),
    ("performance_warnings", ["bash", "shell"], "medium", "warn", [
        (r"(very-)?large-file", "Warning: Large file operation", None),
        (r"find\s+/\s+-", "Warning: Filesystem-wide operation", None),
    ], True),
]


def rows_from_env(rules_json: str, safe_json: str) -> list[dict[str, Any]] | None:
    """SPEC §10.1/§13 overrides: HOOK_VALIDATION_RULES (a JSON list of groups `{name, tools,
    severity, action, patterns: [{regex, message, replacement?}]}`) and HOOK_SAFE_PATTERNS (a JSON
    list of regexes) replace the stored rules while set; None when neither is set."""
    if not rules_json and not safe_json:
        return None
    groups = json.loads(rules_json) if rules_json else [g for g in _default_groups() if g["action"] != "allow"]
    safe = json.loads(safe_json) if safe_json else [p["regex"] for g in _default_groups() if g["action"] == "allow"
                                                    for p in g["patterns"]]
    rows = [{"group": "safe_patterns", "tools": [], "severity": "low", "action": "allow", "pattern": regex,
             "message": "safe command", "replacement": None, "case_insensitive": False, "enabled": True,
             "position": i} for i, regex in enumerate(safe)]
    for g in groups:
        for i, p in enumerate(g.get("patterns") or []):
            rows.append({"group": g["name"], "tools": list(g.get("tools") or []), "severity": g.get("severity", "medium"),
                         "action": g.get("action", "block"), "pattern": p["regex"], "message": p.get("message", ""),
                         "replacement": p.get("replacement"), "case_insensitive": True, "enabled": True,
                         "position": i})
    return rows


def _default_groups() -> list[dict[str, Any]]:
    return [{"name": name, "tools": tools, "severity": sev, "action": action,
             "patterns": [{"regex": r, "message": m, "replacement": rep} for r, m, rep in patterns]}
            for name, tools, sev, action, patterns, _ in DEFAULT_GROUPS]


def default_rule_rows() -> list[dict[str, Any]]:
    """The defaults as HookRule field dicts (used by the data migration and as the fallback)."""
    rows = []
    for group, tools, severity, action, patterns, insensitive in DEFAULT_GROUPS:
        for position, (pattern, message, replacement) in enumerate(patterns):
            rows.append({
                "group": group, "tools": tools, "severity": severity, "action": action,
                "pattern": pattern, "message": message, "replacement": replacement,
                "case_insensitive": insensitive, "enabled": True, "position": position,
            })
    return rows


@dataclass(frozen=True)
class Rule:
    group: str
    tools: tuple[str, ...]
    severity: str
    action: str
    regex: re.Pattern[str]
    message: str
    replacement: str | None

    def applies_to(self, tool: str) -> bool:
        """SPEC §10.2 step 4: equal ignoring case, or the rule's tool is a substring of the tool."""
        if not self.tools:
            return True
        lowered = tool.lower()
        return any(t.lower() == lowered or t.lower() in lowered for t in self.tools)


@dataclass(frozen=True)
class RuleSet:
    safe: tuple[Rule, ...]
    ordered: tuple[Rule, ...]  # block/warn/modify rules in severity order


def compile_rules(rows: list[dict[str, Any]]) -> RuleSet:
    """Compile rule dicts; invalid regexes are skipped (the admin refuses them on save)."""
    safe, others = [], []
    for index, row in enumerate(rows):
        if not row.get("enabled", True):
            continue
        try:
            flags = re.IGNORECASE if row.get("case_insensitive", True) else 0
            regex = re.compile(row["pattern"], flags)
        except re.error:
            continue
        rule = Rule(group=row["group"], tools=tuple(row.get("tools") or ()), severity=row["severity"],
                    action=row["action"], regex=regex, message=row.get("message") or "",
                    replacement=row.get("replacement"))
        (safe if rule.action == "allow" else others).append((index, rule))
    others.sort(key=lambda item: (SEVERITY_PRIORITY.get(item[1].severity, 99), item[0]))
    return RuleSet(safe=tuple(r for _, r in safe), ordered=tuple(r for _, r in others))
