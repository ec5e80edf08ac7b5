"""The low-level MCP server: request handlers for tools, prompts and resources (SPEC §2.7).

One `Server` per process; it holds no per-session state (the SDK's session manager keeps the
sessions), so every session shares it. Handlers read the registry at request time.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER

from claudebench.transport.mcp import prompts, resources, tools

SERVER_NAME = "claudebench-mcp"
SERVER_VERSION = "0.1.0"
INSTRUCTIONS = (
    "ClaudeBench coordinates Claude Code agents: create, claim and complete tasks, register "
    "instances, and inspect the system. Tool names are handler names with dots written as '__'. "
    "Read claudebench://welcome for the current state."
)


def session_id(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The Mcp-Session-Id of the HTTP request that carried this message."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    return headers.get(MCP_SESSION_ID_HEADER) if headers is not None else None


async def _list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=tools.list_tools())


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await tools.call_tool(params.name, params.arguments, session_id(ctx))


async def _list_prompts(ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=prompts.list_prompts())


async def _get_prompt(ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    return prompts.get_prompt(params.name, params.arguments)


async def _list_resources(ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=resources.list_resources())


async def _list_templates(ctx, params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=resources.list_templates())


async def _read_resource(ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    return await resources.read(str(params.uri))


async def _set_logging_level(ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
    # SPEC §2.7 advertises the logging capability; the server sends no log notifications, so
    # there is nothing to filter and the level is accepted as is.
    return types.EmptyResult()


@functools.cache
def server() -> Server:
    with warnings.catch_warnings():
        # The SDK marks logging deprecated for the 2026 protocol; Claude Code still speaks 2025.
        warnings.simplefilter("ignore")
        return Server(
            SERVER_NAME, version=SERVER_VERSION, instructions=INSTRUCTIONS,
            on_list_tools=_list_tools, on_call_tool=_call_tool,
            on_list_prompts=_list_prompts, on_get_prompt=_get_prompt,
            on_list_resources=_list_resources, on_list_resource_templates=_list_templates,
            on_read_resource=_read_resource, on_set_logging_level=_set_logging_level,
        )
