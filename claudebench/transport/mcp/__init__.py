"""MCP over Streamable HTTP at /mcp (SPEC §2.7), built on the official `mcp` SDK.

`app` is the ASGI entry the project router mounts; `startup`/`shutdown` hook the session
manager into the ASGI lifespan. Tools come from the handler registry (tools.py), prompts and
resources from prompts.py and resources.py, the low-level server from server.py.
"""

from claudebench.transport.mcp.app import app, health, shutdown, startup

__all__ = ["app", "health", "shutdown", "startup"]
