"""Tool generation from the registry, without a server (SPEC §2.7, §16 row 47)."""

from __future__ import annotations

import pytest

from claudebench.core import registry
from claudebench.core.registry import HandlerSpec, Mcp
from claudebench.core.schema import Empty, Out
from claudebench.transport.mcp import prompts, resources, tools

pytestmark = pytest.mark.django_db(transaction=True)


async def _documented(ctx, data):
    """Do the documented thing.

    A second paragraph for the curious."""


def _spec(**mcp) -> HandlerSpec:
    return HandlerSpec(event="demo.deep.name", fn=_documented, input=Empty, output=Out, mcp=Mcp(**mcp))


def test_every_dot_becomes_a_double_underscore():
    assert tools.tool_name("system.quorum.vote") == "system__quorum__vote"
    assert tools.tool_name("session.snapshot.create") == "session__snapshot__create"
    assert tools.tool_name("task.create") == "task__create"


def test_description_lists_warnings_prerequisites_and_first_example():
    spec = _spec(warnings=("Deletes data",), prerequisites=("Register first", "Hold a lease"),
                 examples=({"description": "Typical call", "input": {"a": 1}}, {"description": "ignored"}))
    text = tools.description(spec)
    assert text.startswith("Do the documented thing.\n\nA second paragraph for the curious.")
    assert "⚠️ WARNINGS:\n- Deletes data" in text
    assert "PREREQUISITES:\n- Register first\n- Hold a lease" in text
    assert text.endswith('EXAMPLE: Typical call\n{\n  "a": 1\n}')
    assert "ignored" not in text


def test_description_without_metadata_is_the_docstring_alone():
    assert tools.description(_spec()) == "Do the documented thing.\n\nA second paragraph for the curious."


def test_tool_list_is_the_visible_registry_in_order():
    visible = [s for s in registry.specs() if s.mcp.visible]
    listed = tools.list_tools()
    assert [t.name for t in listed] == [s.event.replace(".", "__") for s in visible]
    assert not [s for s in registry.specs() if not s.mcp.visible and tools.find(tools.tool_name(s.event))]
    for tool in listed:
        assert tool.input_schema["type"] == "object"
        assert "properties" in tool.input_schema


def test_task_create_schema_comes_from_its_input_model():
    [tool] = [t for t in tools.list_tools() if t.name == "task__create"]
    assert tool.input_schema["required"] == ["text"]
    assert set(tool.input_schema["properties"]) >= {"text", "priority", "metadata"}
    assert "EXAMPLE:" in tool.description


def test_prompts_render_without_a_server():
    text = prompts.get_prompt("resolve-conflict", {
        "projectType": "web app", "requirements": '["fast"]',
        "solutions": '[{"instanceId": "worker-7", "approach": "cache it", "reasoning": "cheap"}]',
    }).messages[0].content.text
    assert "worker-7" in text and "cache it" in text and "- fast" in text
    assert "Bundle size limit" in text  # default constraints
    assert "&quot;" not in text and "&#x27;" not in text  # markdown, not HTML-escaped


def test_resource_catalogue_has_the_documented_uris():
    assert {r.uri for r in resources.list_resources()} == {
        "swarm://tasks", "swarm://tasks/pending", "swarm://conflicts", "swarm://decompositions",
        "claudebench://welcome",
    }
    assert {t.uri_template for t in resources.list_templates()} == {
        "swarm://decomposition/{taskId}", "swarm://context/{subtaskId}", "swarm://progress/{taskId}",
        "task://view/{taskId}",
    }
