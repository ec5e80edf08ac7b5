"""MCP prompts (SPEC §2.7): decompose-task, resolve-conflict, synthesize-progress.

Arguments arrive as strings (MCP prompt arguments are strings); the JSON-valued ones are parsed
here and a bad value is an invalid-params error naming the argument. The text comes from
templates under templates/mcp/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from django.template.loader import render_to_string
from mcp.shared.exceptions import MCPError

# The demo roster the decomposition prompt shows (SPEC §2.7): id, role, skills, load, capacity.
SPECIALISTS = (
    {"id": "worker-1", "type": "frontend", "capabilities": ["react", "typescript", "css"], "load": 2, "max": 5},
    {"id": "worker-2", "type": "backend", "capabilities": ["node", "apis", "database"], "load": 1, "max": 5},
    {"id": "worker-3", "type": "testing", "capabilities": ["jest", "e2e", "integration"], "load": 0, "max": 5},
)
DEFAULT_PRIORITY = 75
DEFAULT_DECOMPOSE_CONSTRAINTS = ("Maintain existing design system", "Ensure accessibility compliance")
DEFAULT_CONFLICT_CONSTRAINTS = ("Bundle size limit", "IE11 compatibility not required")


@dataclass(frozen=True)
class PromptDef:
    name: str
    title: str
    description: str
    arguments: tuple[types.PromptArgument, ...]
    template: str
    context: Callable[[dict[str, str]], dict[str, Any]]

    def listing(self) -> types.Prompt:
        return types.Prompt(name=self.name, title=self.title, description=self.description,
                            arguments=list(self.arguments))


def _arg(name: str, description: str, required: bool) -> types.PromptArgument:
    return types.PromptArgument(name=name, description=description, required=required)


def _invalid(message: str) -> MCPError:
    return MCPError(code=types.INVALID_PARAMS, message=message)


def _json_arg(args: dict[str, str], name: str, *, expect: type, default: Any = None) -> Any:
    raw = args.get(name)
    if raw is None or raw.strip() == "":
        if default is not None:
            return default
        raise _invalid(f"Missing required argument: {name}")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise _invalid(f"Argument '{name}' is not valid JSON: {exc}") from None
    if not isinstance(value, expect):
        raise _invalid(f"Argument '{name}' must be a JSON {'array' if expect is list else 'object'}")
    return value


def _text_arg(args: dict[str, str], name: str) -> str:
    value = (args.get(name) or "").strip()
    if not value:
        raise _invalid(f"Missing required argument: {name}")
    return value


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _decompose_context(args: dict[str, str]) -> dict[str, Any]:
    raw_priority = (args.get("priority") or "").strip()
    try:
        priority = int(raw_priority) if raw_priority else DEFAULT_PRIORITY
    except ValueError:
        raise _invalid("Argument 'priority' must be an integer between 0 and 100") from None
    if not 0 <= priority <= 100:
        raise _invalid("Argument 'priority' must be an integer between 0 and 100")
    constraints = _json_arg(args, "constraints", expect=list, default=list(DEFAULT_DECOMPOSE_CONSTRAINTS))
    return {"task": _text_arg(args, "task"), "priority": priority, "constraints": constraints,
            "specialists": SPECIALISTS}


def _conflict_context(args: dict[str, str]) -> dict[str, Any]:
    solutions = _json_arg(args, "solutions", expect=list)
    for index, solution in enumerate(solutions):
        if not isinstance(solution, dict):
            raise _invalid(f"Argument 'solutions' item {index} must be an object with instanceId, approach, reasoning")
    return {
        "project_type": _text_arg(args, "projectType"),
        "requirements": _json_arg(args, "requirements", expect=list),
        "solutions": [{"instance_id": s.get("instanceId", f"solution-{i + 1}"), "approach": s.get("approach", ""),
                       "reasoning": s.get("reasoning", "")} for i, s in enumerate(solutions)],
        "constraints": _json_arg(args, "constraints", expect=list, default=list(DEFAULT_CONFLICT_CONSTRAINTS)),
    }


def _synthesis_context(args: dict[str, str]) -> dict[str, Any]:
    subtasks = _json_arg(args, "completedSubtasks", expect=list)
    rows = []
    for index, item in enumerate(subtasks):
        if not isinstance(item, dict):
            raise _invalid(f"Argument 'completedSubtasks' item {index} must be an object")
        rows.append({"id": item.get("id", f"subtask-{index + 1}"), "specialist": item.get("specialist", "unknown"),
                     "output": item.get("output", ""), "artifacts": item.get("artifacts") or []})
    return {"parent_task": _text_arg(args, "parentTask"), "subtasks": rows, "subtasks_json": _pretty(subtasks)}


PROMPTS: dict[str, PromptDef] = {p.name: p for p in (
    PromptDef(
        name="decompose-task", title="Decompose a task",
        description="Break a task into subtasks that specialists can work on in parallel.",
        arguments=(
            _arg("task", "What needs to be done", True),
            _arg("priority", "Priority 0-100 as a string (default 75)", False),
            _arg("constraints", "JSON array of constraints to respect", False),
        ),
        template="mcp/decompose_task.md", context=_decompose_context,
    ),
    PromptDef(
        name="resolve-conflict", title="Resolve conflicting solutions",
        description="Choose between (or merge) competing solutions proposed by several instances.",
        arguments=(
            _arg("projectType", "Kind of project, e.g. 'React web app'", True),
            _arg("requirements", "JSON array of requirements", True),
            _arg("solutions", "JSON array of {instanceId, approach, reasoning}", True),
            _arg("constraints", "JSON array of constraints", False),
        ),
        template="mcp/resolve_conflict.md", context=_conflict_context,
    ),
    PromptDef(
        name="synthesize-progress", title="Synthesize subtask results",
        description="Merge the results of completed subtasks into one integrated outcome.",
        arguments=(
            _arg("parentTask", "The task the subtasks belong to", True),
            _arg("completedSubtasks", "JSON array of {id, specialist, output, artifacts}", True),
        ),
        template="mcp/synthesize_progress.md", context=_synthesis_context,
    ),
)}


def list_prompts() -> list[types.Prompt]:
    return [p.listing() for p in PROMPTS.values()]


def get_prompt(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
    prompt = PROMPTS.get(name)
    if prompt is None:
        raise _invalid(f"Unknown prompt: {name}")
    args = dict(arguments or {})
    missing = [a.name for a in prompt.arguments if a.required and not (args.get(a.name) or "").strip()]
    if missing:
        raise _invalid(f"Missing required argument{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    text = render_to_string(prompt.template, prompt.context(args))
    return types.GetPromptResult(
        description=prompt.description,
        messages=[types.PromptMessage(role="user", content=types.TextContent(text=text.strip() + "\n"))],
    )
