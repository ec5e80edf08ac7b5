"""MCP tools generated from the handler registry (SPEC §2.7).

One tool per handler whose `Mcp.visible` is true, named after the event with every dot replaced
by `__` (SPEC §16 row 47). The list is built from `registry.specs()` each time it is asked for,
so handlers added by other modules show up without touching this file.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

import mcp_types as types

from claudebench.core import keys, pipeline, registry
from claudebench.core.errors import CbError, InvalidParams
from claudebench.core.pipeline import CallMeta
from claudebench.core.redis import get_redis
from claudebench.core.registry import HandlerSpec
from claudebench.core.schema import json_schema

log = logging.getLogger("claudebench.transport.mcp")

SERVICE_STATUS_TTL_S = 300  # SPEC §6.4: cb:service:mcp:status lives 300 s after the last MCP activity

# Tool objects are cached per (event, handler function): schema generation is not free and the
# registry does not change under a running process except by adding handlers.
_cache: dict[tuple[str, int], types.Tool] = {}


def tool_name(event: str) -> str:
    """`system.quorum.vote` → `system__quorum__vote`: every dot, not only the first."""
    return event.replace(".", "__")


def visible_specs() -> list[HandlerSpec]:
    return [spec for spec in registry.specs() if spec.mcp.visible]


def find(name: str) -> HandlerSpec | None:
    """The visible handler behind a tool name, or None (hidden handlers are not tools)."""
    for spec in visible_specs():
        if tool_name(spec.event) == name:
            return spec
    return None


def _pretty(value: Any) -> str:
    # The same layout as JSON.stringify(value, null, 2) on the original server.
    return json.dumps(value, indent=2, ensure_ascii=False)


def description(spec: HandlerSpec) -> str:
    """Docstring, then the handler's MCP notes: warnings, prerequisites, first example."""
    text = inspect.getdoc(spec.fn) or spec.description or f"Execute {spec.event} event handler"
    parts = [text.strip()]
    if spec.mcp.warnings:
        parts.append("⚠️ WARNINGS:\n" + "\n".join(f"- {w}" for w in spec.mcp.warnings))
    if spec.mcp.prerequisites:
        parts.append("PREREQUISITES:\n" + "\n".join(f"- {p}" for p in spec.mcp.prerequisites))
    if spec.mcp.examples:
        example = spec.mcp.examples[0]
        label = example.get("description") or "Example call"
        parts.append(f"EXAMPLE: {label}\n{_pretty(example.get('input', {}))}")
    return "\n\n".join(parts)


def _build(spec: HandlerSpec) -> types.Tool:
    schema = json_schema(spec.input, mode="validation")
    schema.pop("title", None)  # the pydantic class name means nothing to an MCP client
    return types.Tool(
        name=tool_name(spec.event),
        title=spec.mcp.title,
        description=description(spec),
        input_schema=schema,
        annotations=types.ToolAnnotations(title=spec.mcp.title, read_only_hint=not spec.mutating),
    )


def tool(spec: HandlerSpec) -> types.Tool:
    key = (spec.event, id(spec.fn))
    built = _cache.get(key)
    if built is None:
        built = _cache[key] = _build(spec)
    return built


def list_tools() -> list[types.Tool]:
    return [tool(spec) for spec in visible_specs()]


async def mark_activity() -> None:
    """SPEC §2.7: every initialize and tool call refreshes the service flag and counts one call."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.set(keys.SERVICE_MCP, "ok", ex=SERVICE_STATUS_TTL_S)
    pipe.incr(keys.METRICS_MCP_CALLS)
    await pipe.execute()


def _text_result(text: str, *, error: bool) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=error)


def _issues_text(event: str, exc: InvalidParams) -> str:
    lines = [f"Invalid arguments for {tool_name(event)}: {exc.detail}"]
    for issue in exc.data if isinstance(exc.data, list) else []:
        path = ".".join(str(p) for p in issue.get("path") or []) or "(arguments)"
        lines.append(f"- {path}: {issue.get('message')} [{issue.get('code')}]")
    return "\n".join(lines)


async def call_tool(name: str, arguments: dict[str, Any] | None, session_id: str | None) -> types.CallToolResult:
    """Run the handler behind `name` through the full pipeline as the MCP session `session_id`."""
    spec = find(name)
    if spec is None:
        return _text_result(f"Unknown tool: {name}", error=True)
    await mark_activity()
    meta = CallMeta(transport="mcp", client_id=session_id, session_id=session_id)
    try:
        out = await pipeline.call(spec.event, {} if arguments is None else arguments, meta)
    except InvalidParams as exc:
        return _text_result(_issues_text(spec.event, exc), error=True)
    except CbError as exc:
        return _text_result(f"{spec.event} failed ({exc.code}): {exc.detail}", error=True)
    except Exception:
        log.exception("MCP tool %s crashed", name)
        return _text_result(f"{spec.event} failed: internal error (see the server log)", error=True)
    return _text_result(_pretty(out), error=False)
