"""Input validation helpers (SPEC §18.2) and the bus envelope (SPEC §4.1-4.2)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import Field

from claudebench.core import bus, keys
from claudebench.core.errors import InvalidParams
from claudebench.core.schema import Out, Schema, json_schema, opt, validate_input


class Sample(Schema):
    text: str = Field(min_length=1, max_length=5)
    count: int = 1
    flag: bool = False
    tags: list[str] = Field(default_factory=list)
    extra_info: dict[str, Any] = None  # type: ignore[assignment]


class SampleOut(Out):
    kept: str
    maybe: str | None = opt()
    nullable: str | None = None


def issues(params: Any) -> list[dict[str, Any]]:
    with pytest.raises(InvalidParams) as caught:
        validate_input(Sample, params)
    return caught.value.data


def test_strict_types_without_coercion():
    for params, path in (({"text": 5}, ["text"]), ({"text": "a", "count": "1"}, ["count"]),
                         ({"text": "a", "count": 1.0}, ["count"]), ({"text": "a", "count": True}, ["count"]),
                         ({"text": "a", "flag": 1}, ["flag"]), ({"text": "a", "flag": "yes"}, ["flag"]),
                         ({"text": "a", "tags": ["x", 1]}, ["tags", 1]), ({"text": "a", "extraInfo": None},
                                                                            ["extraInfo"])):
        assert any(issue["path"] == path for issue in issues(params)), params


def test_lengths_count_code_points():
    assert validate_input(Sample, {"text": "🚀🚀🚀🚀🚀"}).text == "🚀🚀🚀🚀🚀"
    assert issues({"text": "🚀" * 6})[0]["path"] == ["text"]


def test_wire_names_only_and_unknown_keys_dropped():
    data = validate_input(Sample, {"text": "a", "extraInfo": {"k": 1}, "extra_info": "ignored", "zzz": 1})
    assert data.extra_info == {"k": 1}
    assert "zzz" not in data.model_dump()


def test_unstorable_strings_anywhere_are_named():
    assert issues({"text": "a\x00"})[0]["path"] == ["text"]
    assert issues({"text": "a", "tags": ["ok", "\ud800"]})[0]["path"] == ["tags", 1]
    found = issues({"text": "a", "extraInfo": {"deep": [{"k\x00": 1}]}})[0]
    assert found["path"] == ["extraInfo", "deep", 0, "k\x00"] and "key" in found["message"]
    assert "NUL" in issues({"text": "\x00"})[0]["message"]
    assert "surrogate" in issues({"text": "\udfff"})[0]["message"]


def test_optional_output_fields_are_omitted_nullable_ones_are_null():
    assert SampleOut(kept="k").wire() == {"kept": "k", "nullable": None}
    assert SampleOut(kept="k", maybe="m").wire() == {"kept": "k", "maybe": "m", "nullable": None}


def test_json_schema_keeps_type_properties_required_on_top():
    schema = json_schema(Sample, mode="validation")
    assert schema["type"] == "object" and schema["required"] == ["text"]
    assert set(schema["properties"]) == {"text", "count", "flag", "tags", "extraInfo"}


def test_envelope_shape():
    env = bus.envelope("a.b", {"x": 1}, {"m": 2}, id="evt-1-abc", timestamp=5)
    assert env == {"id": "evt-1-abc", "type": "a.b", "payload": {"x": 1}, "metadata": {"m": 2}, "timestamp": 5}
    assert list(bus.envelope("a.b", None)) == ["id", "type", "payload", "timestamp"]  # no metadata key


async def test_publish_carries_correlation_id_and_partition(redis):
    eid = await bus.publish("core.test", {"v": 1}, {"who": "t"}, correlation_id="c-1", partition_key="p-1")
    [envelope] = await bus.recent("core.test")
    assert envelope["id"] == eid
    assert envelope["metadata"] == {"who": "t", "correlationId": "c-1", "partitionKey": "p-1"}
    [entry] = await redis.lrange(keys.partition("p-1"), 0, -1)
    assert orjson.loads(entry)["id"] == eid


async def test_request_records_are_marked_and_kept_out_of_domain_events(redis, stream_events):
    await bus.record_request("core.thing", {"a": 1}, client_id="cli-1")
    [(_, fields)] = await redis.xrange(keys.stream("core.thing"))
    record = orjson.loads(fields["data"])
    assert record["metadata"] == {"kind": "request", "clientId": "cli-1"} and record["payload"] == {"a": 1}
    assert await stream_events("core.thing") == []


async def test_envelopes_nested_past_orjsons_writer_limit_are_still_written(redis):
    # orjson writes 254 levels at most; a request nested just under the parser's limit is deeper
    # than that once wrapped in the envelope, and must still be recorded and published.
    deep: Any = 1
    for _ in range(260):
        deep = {"a": deep}
    await bus.record_request("core.deep", {"metadata": deep}, client_id=None)
    eid = await bus.publish("core.deep", {"metadata": deep})
    [published] = await bus.recent("core.deep", limit=1)
    assert published["id"] == eid
    node, depth = published["payload"]["metadata"], 0
    while isinstance(node, dict):
        node, depth = node["a"], depth + 1
    assert depth == 260
    assert bus.to_json({"n": 2**70}) == '{"n":1180591620717411303424}'
