"""JSON-RPC 2.0 over HTTP through the real ASGI app: every rule of SPEC §2.2 and §18.1–18.2.

Each test posts raw bytes (so malformed bodies reach the server as sent) and reads the answer
back; where input is refused, it also checks that nothing was stored in Redis or PostgreSQL and
that the server still answers the next request.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from claudebench.core import keys
from tasks.models import Task
from tests.factories import TASK_DB

pytestmark = TASK_DB

HEALTH = b'{"jsonrpc":"2.0","method":"system.health","id":"after"}'


async def post(client, body: bytes | str, path: str = "/rpc"):
    if isinstance(body, str):
        body = body.encode()
    return await client.post(path, content=body, headers={"content-type": "application/json"})


def raw(obj: Any) -> bytes:
    return orjson.dumps(obj)


async def assert_still_answering(client) -> None:
    response = await post(client, HEALTH)
    assert response.status_code == 200
    answer = response.json()
    assert answer["id"] == "after" and answer["result"]["status"] in ("healthy", "degraded", "unhealthy")


async def assert_nothing_stored(redis) -> None:
    assert [k async for k in redis.scan_iter(match=keys.TASK_PATTERN)] == []
    assert await redis.zcard(keys.PENDING_TASKS) == 0
    assert await Task.objects.acount() == 0


def error_of(response, code: int, *, rid: Any = None) -> dict[str, Any]:
    """The error member of a JSON-RPC error answer, after checking the wire basics (HTTP 200)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    assert "result" not in body
    assert body["id"] == rid and type(body["id"]) is type(rid)
    assert body["error"]["code"] == code, body
    return body["error"]


# --- §18.1 parsing -------------------------------------------------------------------------------
DEEP = b"[" * 2000 + b"]" * 2000
PARSE_ERRORS = {
    "invalid": b"{not json}",
    "truncated": b'{"jsonrpc":"2.0","method":"task.create","params":{"text":"a"',
    "empty": b"",
    "nan": b'{"jsonrpc":"2.0","method":"task.create","params":{"text":"a","priority":NaN},"id":1}',
    "infinity": b'{"jsonrpc":"2.0","method":"task.create","params":{"text":"a","priority":Infinity},"id":1}',
    "minus_infinity": b'{"jsonrpc":"2.0","method":"task.create","params":{"text":"a","priority":-Infinity},"id":1}',
    "bare_nan": b"NaN",
    "invalid_utf8": b'{"jsonrpc":"2.0","method":"task.create","params":{"text":"\xff\xfe"},"id":1}',
    "overlong_utf8": b'{"jsonrpc":"2.0","method":"task.create","params":{"text":"\xc0\xaf"},"id":1}',
    "deep_array": DEEP,
    "deep_params": b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"a","metadata":'
    + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}}",
    "deep_with_surrogate": b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"\\ud800","m":'
    + DEEP + b"}}",
    "nan_with_surrogate": b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"\\ud800","p":NaN}}',
    "trailing_garbage": b'{"jsonrpc":"2.0","method":"system.health","id":1} x',
    "single_quotes": b"{'jsonrpc':'2.0','method':'system.health','id':1}",
}


async def test_unparseable_body_is_parse_error_with_null_id(client, redis):
    for name, body in PARSE_ERRORS.items():
        error = error_of(await post(client, body), -32700)
        assert error["message"] == "Parse error", name
        await assert_still_answering(client)
    await assert_nothing_stored(redis)


async def test_json_that_is_not_an_object_is_invalid_request(client, redis):
    for body in (b"null", b'"text"', b"42", b"true", b"false", b"3.5", b' "padded" '):
        error = error_of(await post(client, body), -32600)
        assert error["message"] == "Invalid request", body
    await assert_still_answering(client)


ENVELOPE_ERRORS = {
    "jsonrpc_number": {"jsonrpc": 2.0, "method": "system.health", "id": 1},
    "jsonrpc_other_string": {"jsonrpc": "1.0", "method": "system.health", "id": 1},
    "jsonrpc_missing": {"method": "system.health", "id": 1},
    "method_missing": {"jsonrpc": "2.0", "id": 1},
    "method_number": {"jsonrpc": "2.0", "method": 42, "id": 1},
    "method_null": {"jsonrpc": "2.0", "method": None, "id": 1},
    "method_array": {"jsonrpc": "2.0", "method": ["task.create"], "id": 1},
    "metadata_string": {"jsonrpc": "2.0", "method": "system.health", "id": 1, "metadata": "x"},
    "metadata_array": {"jsonrpc": "2.0", "method": "system.health", "id": 1, "metadata": []},
    "metadata_session_number": {"jsonrpc": "2.0", "method": "system.health", "id": 1, "metadata": {"sessionId": 5}},
    "metadata_correlation_bool": {"jsonrpc": "2.0", "method": "system.health", "id": 1,
                                  "metadata": {"correlationId": True}},
    "metadata_timestamp_string": {"jsonrpc": "2.0", "method": "system.health", "id": 1,
                                  "metadata": {"timestamp": "1700000000000"}},
    "metadata_timestamp_bool": {"jsonrpc": "2.0", "method": "system.health", "id": 1,
                                "metadata": {"timestamp": True}},
    "id_object": {"jsonrpc": "2.0", "method": "system.health", "id": {"a": 1}},
    "id_array": {"jsonrpc": "2.0", "method": "system.health", "id": [1]},
    "id_bool": {"jsonrpc": "2.0", "method": "system.health", "id": True},
}


async def test_envelope_is_validated_strictly(client, redis):
    for name, obj in ENVELOPE_ERRORS.items():
        error = error_of(await post(client, raw(obj)), -32600)  # id is null even when one was sent
        assert error["message"] == "Invalid request", name
        assert isinstance(error["data"], list) and error["data"], name
        assert all({"path", "message"} <= set(issue) for issue in error["data"]), name


async def test_invalid_envelope_of_a_create_stores_nothing(client, redis):
    body = raw({"jsonrpc": 2.0, "method": "task.create", "params": {"text": "x"}, "id": 1})
    error_of(await post(client, body), -32600)
    await assert_nothing_stored(redis)


async def test_valid_metadata_and_unknown_top_level_fields_are_accepted(client, redis):
    body = raw({"jsonrpc": "2.0", "method": "system.health", "id": 7, "extra": [1, 2],
                "metadata": {"sessionId": "s-1", "correlationId": "c-1", "timestamp": 1.5}})
    response = await post(client, body)
    assert response.status_code == 200 and response.json()["id"] == 7 and "result" in response.json()


# --- method lookup -----------------------------------------------------------------------------------
ODD_METHODS = ["nope", "task.nope", "Task.Create", " task.create", "task.create ", "task..create", "",
               "task.create\u0000", "ünïcødé.方法", "x" * 5000, "rpc.discover", "mcp.tool.list"]


async def test_unknown_method_is_method_not_found_with_id_echoed(client, redis):
    for method in ODD_METHODS:
        body = raw({"jsonrpc": "2.0", "method": method, "id": "m-1", "params": {"text": "x"}})
        error = error_of(await post(client, body), -32601, rid="m-1")
        assert error["message"] == f"Method not found: {method}"
    await assert_nothing_stored(redis)


async def test_unknown_method_with_numeric_and_null_ids(client, redis):
    error_of(await post(client, raw({"jsonrpc": "2.0", "method": "no.such", "id": 0})), -32601, rid=0)
    error_of(await post(client, raw({"jsonrpc": "2.0", "method": "no.such", "id": None})), -32601, rid=None)


# --- id echo -------------------------------------------------------------------------------------------
IDS = [0, -5, 987654321, 3.5, -0.25, "", "abc", "x" * 10_000, None, 2**53, "0", "null"]


async def test_id_is_echoed_with_its_exact_type_and_value(client, redis):
    for rid in IDS:
        response = await post(client, raw({"jsonrpc": "2.0", "method": "system.health", "id": rid}))
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == rid and type(body["id"]) is type(rid), repr(rid)[:30]
        assert "result" in body and "error" not in body


async def test_id_echo_keeps_the_json_number_form(client, redis):
    # 3.5 must not come back as "3.5" or 3; 0 not as false or null (byte-level check).
    for rid, wire in ((3.5, b'"id":3.5'), (0, b'"id":0'), (-5, b'"id":-5'), (None, b'"id":null')):
        response = await post(client, raw({"jsonrpc": "2.0", "method": "system.health", "id": rid}))
        assert wire in response.content


async def test_id_is_echoed_on_handler_errors(client, redis):
    body = raw({"jsonrpc": "2.0", "method": "task.create", "params": {"text": ""}, "id": 3.5})
    error_of(await post(client, body), -32602, rid=3.5)


# --- notifications ---------------------------------------------------------------------------------------
async def test_notification_gets_204_and_empty_body_but_runs(client, redis):
    body = raw({"jsonrpc": "2.0", "method": "task.create", "params": {"text": "note"}})
    response = await post(client, body)
    assert response.status_code == 204
    assert response.content == b""
    assert await Task.objects.filter(text="note").acount() == 1


async def test_failed_notification_still_reports_its_error(client, redis):
    # SPEC §16 row 56: the original answers errors even for notifications (kept).
    response = await post(client, raw({"jsonrpc": "2.0", "method": "task.create", "params": {"text": ""}}))
    error_of(response, -32602, rid=None)


# --- params ---------------------------------------------------------------------------------------------
async def test_non_object_params_for_an_object_input_is_invalid_params(client, redis):
    for params in ([1, 2, 3], "text", 42, True, None, 3.5, [], [{"text": "x"}]):
        body = raw({"jsonrpc": "2.0", "method": "task.create", "params": params, "id": 9})
        error = error_of(await post(client, body), -32602, rid=9)
        assert error["message"] == "Invalid parameters", params
    await assert_nothing_stored(redis)


async def test_missing_params_means_empty_object(client, redis):
    ok = await post(client, raw({"jsonrpc": "2.0", "method": "system.health", "id": 1}))
    assert "result" in ok.json()
    # task.create without params is {} → the required text is missing → -32602, not -32600.
    error = error_of(await post(client, raw({"jsonrpc": "2.0", "method": "task.create", "id": 2})), -32602, rid=2)
    assert any(issue["path"] == ["text"] for issue in error["data"])


# --- arrays on /rpc and /rpc/batch ------------------------------------------------------------------
def req(method: str, params: Any = None, rid: Any = "absent") -> dict[str, Any]:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        obj["params"] = params
    if rid != "absent":
        obj["id"] = rid
    return obj


@pytest.mark.parametrize("path", ["/rpc", "/rpc/batch"])
async def test_batch_answers_in_input_order_without_notifications(client, redis, path):
    batch = [
        req("task.create", {"text": "first"}, "a"),
        req("task.create", {"text": "silent"}),  # notification: runs, no answer
        req("no.such", None, 2),
        req("task.create", {"text": ""}, 3),
        "not an object",
        req("task.create", {"text": "last"}, None),
    ]
    response = await post(client, raw(batch), path)
    assert response.status_code == 200
    answers = response.json()
    assert [a["id"] for a in answers] == ["a", 2, 3, None, None]
    assert answers[0]["result"]["text"] == "first"
    assert answers[1]["error"]["code"] == -32601
    assert answers[2]["error"]["code"] == -32602
    assert answers[3]["error"]["code"] == -32600
    assert answers[4]["result"]["text"] == "last"
    texts = {t async for t in Task.objects.values_list("text", flat=True)}
    assert texts == {"first", "silent", "last"}


async def test_all_notification_array_on_rpc_is_204(client, redis):
    response = await post(client, raw([req("task.create", {"text": "n1"}), req("task.create", {"text": "n2"})]))
    assert response.status_code == 204 and response.content == b""
    assert await Task.objects.acount() == 2


async def test_all_notification_batch_on_rpc_batch_is_200_empty_array(client, redis):
    response = await post(client, raw([req("task.create", {"text": "n1"})]), "/rpc/batch")
    assert response.status_code == 200 and response.json() == []
    assert await Task.objects.acount() == 1


async def test_batch_envelope_errors(client, redis):
    for body in (raw(req("system.health", None, 1)), b"42", b"null", b'"x"', b"{}"):
        error = error_of(await post(client, body, "/rpc/batch"), -32600)
        assert error["message"] == "Batch must be an array", body
    for path in ("/rpc", "/rpc/batch"):
        error = error_of(await post(client, b"[]", path), -32600)
        assert error["message"] == "Batch cannot be empty", path
    for body in (b"[", b"[{]", b"[NaN]", DEEP, b"\xff", b""):
        error = error_of(await post(client, body, "/rpc/batch"), -32700)
        assert error["message"] == "Invalid batch request", body[:10]
    await assert_still_answering(client)


# --- sizes ------------------------------------------------------------------------------------------------
async def test_body_over_the_limit_is_413_with_a_jsonrpc_body(client, redis, settings):
    settings.CB_MAX_BODY_BYTES = 4096
    body = raw(req("task.create", {"text": "x" * 10_000}, 1))
    response = await post(client, body)
    assert response.status_code == 413
    answer = response.json()
    assert answer["jsonrpc"] == "2.0" and answer["id"] is None
    assert answer["error"]["code"] == -32600
    await assert_nothing_stored(redis)
    await assert_still_answering(client)
    settings.CB_MAX_BODY_BYTES = 10 * 1024 * 1024


async def test_body_over_the_limit_on_rpc_batch_is_413(client, redis, settings):
    settings.CB_MAX_BODY_BYTES = 2048
    response = await post(client, raw([req("task.create", {"text": "y" * 5000}, 1)]), "/rpc/batch")
    assert response.status_code == 413 and response.json()["error"]["code"] == -32600
    await assert_nothing_stored(redis)


async def test_large_text_under_the_body_limit_is_invalid_params(client, redis):
    for size in (300 * 1024, 1024 * 1024):
        response = await post(client, raw(req("task.create", {"text": "z" * size}, "big")))
        error = error_of(response, -32602, rid="big")
        assert any(issue["path"] == ["text"] for issue in error["data"])
        assert len(response.content) < 10_000  # the issue list does not echo the megabyte back
    await assert_nothing_stored(redis)
    await assert_still_answering(client)


async def test_jsonrpc_answers_are_http_200_for_every_error_kind(client, redis):
    bodies = [b"{", b"42", raw(req("no.such", None, 1)), raw(req("task.create", {"text": ""}, 1)),
              raw(req("task.update", {"id": "t-1", "updates": {}}, 1))]
    for body in bodies:
        response = await post(client, body)
        assert response.status_code == 200, body
        assert "error" in response.json()


async def test_handler_errors_are_internal_error_with_the_reason_in_data(client, redis):
    response = await post(client, raw(req("task.update", {"id": "t-404", "updates": {"text": "x"}}, 4)))
    error = error_of(response, -32603, rid=4)
    assert error["message"] == "Internal error"
    assert "Task not found" in error["data"]


# --- §18.2 unstorable strings --------------------------------------------------------------------------
async def test_nul_character_is_invalid_params_naming_the_field(client, redis):
    for text in ("a\u0000b", "\u0000"):
        error = error_of(await post(client, raw(req("task.create", {"text": text}, 1))), -32602, rid=1)
        assert error["message"] == "Invalid parameters"
        assert any(issue["path"] == ["text"] and "text" in issue["message"] for issue in error["data"])
    await assert_nothing_stored(redis)


async def test_lone_surrogate_is_invalid_params_naming_the_field(client, redis):
    for escaped in (b"\\ud800", b"abc\\udfff", b"\\ud800\\ud800", b"\\uDC00x"):
        body = b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"' + escaped + b'"}}'
        error = error_of(await post(client, body), -32602, rid=1)
        assert any(issue["path"] == ["text"] and "text" in issue["message"] for issue in error["data"]), escaped
    await assert_nothing_stored(redis)
    await assert_still_answering(client)


async def test_unstorable_string_nested_in_metadata_names_its_path(client, redis):
    body = raw(req("task.create", {"text": "ok", "metadata": {"notes": ["fine", "bad\u0000"]}}, 1))
    error = error_of(await post(client, body), -32602, rid=1)
    assert error["data"][0]["path"] == ["metadata", "notes", 1]
    await assert_nothing_stored(redis)


async def test_valid_surrogate_pair_escape_is_stored_as_the_character(client, redis):
    body = b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"\\ud83d\\ude00"}}'
    response = await post(client, body)
    assert response.json()["result"]["text"] == "\U0001f600"


# --- §18.2 strict types and bounds ----------------------------------------------------------------------
BAD_PRIORITY = {"string": "50", "float": 50.5, "integral_float": 50.0, "array": [50], "null": None,
                "true": True, "false": False, "huge": 10**30, "1e308": 1e308, "101": 101, "negative": -1,
                "object": {"v": 50}}


async def test_priority_is_a_strict_integer_in_range(client, redis):
    for name, priority in BAD_PRIORITY.items():
        if priority == 10**30:  # orjson.dumps refuses ints past 64 bits; write the literal ourselves
            body = b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"typed","priority":' \
                + b"1" + b"0" * 30 + b"}}"
        else:
            body = raw(req("task.create", {"text": "typed", "priority": priority}, 1))
        error = error_of(await post(client, body), -32602, rid=1)
        assert any(issue["path"] == ["priority"] for issue in error["data"]), name
    await assert_nothing_stored(redis)


BAD_TEXT = {"number": 5, "null": None, "bool": True, "array": ["a"], "object": {"t": "a"}, "empty": "",
            "501": "x" * 501}


async def test_text_and_metadata_are_strictly_typed(client, redis):
    for name, text in BAD_TEXT.items():
        error = error_of(await post(client, raw(req("task.create", {"text": text}, 1))), -32602, rid=1)
        assert any(issue["path"] == ["text"] for issue in error["data"]), name
    for metadata in ("x", [1], 1, True, None):
        body = raw(req("task.create", {"text": "m", "metadata": metadata}, 1))
        error = error_of(await post(client, body), -32602, rid=1)
        assert any(issue["path"][:1] == ["metadata"] for issue in error["data"]), metadata
    await assert_nothing_stored(redis)


async def test_priority_bounds_are_inclusive(client, redis):
    for priority in (0, 100):
        response = await post(client, raw(req("task.create", {"text": "b", "priority": priority}, 1)))
        assert response.json()["result"]["priority"] == priority


async def test_500_characters_counted_as_code_points(client, redis):
    for text in ("字" * 500, "\U0001f600" * 500, "é" * 500):
        response = await post(client, raw(req("task.create", {"text": text}, 1)))
        assert response.json()["result"]["text"] == text
    over = await post(client, raw(req("task.create", {"text": "\U0001f600" * 501}, 1)))
    error_of(over, -32602, rid=1)


async def test_unknown_input_keys_are_dropped(client, redis):
    params = {"text": "keep", "priority": 5, "bogus": 1, "id": "t-1", "status": "completed", "Text": "no"}
    answer = (await post(client, raw(req("task.create", params, 1)))).json()["result"]
    assert set(answer) == {"id", "text", "status", "priority", "createdAt"}
    assert answer["status"] == "pending" and answer["id"] != "t-1" and answer["text"] == "keep"
    stored = await redis.hgetall(keys.task(answer["id"]))
    assert "bogus" not in stored and "Text" not in stored and stored["status"] == "pending"
    row = await Task.objects.aget(id=answer["id"])
    assert row.metadata is None and row.status == "pending"


async def test_snake_case_names_are_not_accepted_for_camel_case_fields(client, redis):
    # Only wire names count: task_id is an unknown key, so taskId is missing.
    error = error_of(await post(client, raw(req("task.unassign", {"task_id": "t-1"}, 1))), -32602, rid=1)
    assert any(issue["path"] == ["taskId"] for issue in error["data"])


# --- §18.2 text fidelity and omitted optional fields ----------------------------------------------------
TEXTS = {
    "whitespace": "  leading and trailing  ",
    "newlines": "line one\nline two\r\nline three\n",
    "tabs": "\tindented\t",
    "html": "<script>alert('x') & \"quotes\"</script>",
    "emoji": "ship it 🚀🎉 👩‍💻",
    "cjk": "任务：写文档 ドキュメント 문서",
    "combining": "e\u0301 vs \u00e9",  # must not be normalised
    "zero_width": "a\u200bb\ufeff",
    "backslashes": "C:\\path\\to\\file \\n not a newline",
    "json_like": '{"not": "parsed"}',
}


async def test_text_is_stored_and_returned_exactly(client, redis):
    created = {}
    for name, text in TEXTS.items():
        answer = (await post(client, raw(req("task.create", {"text": text}, 1)))).json()["result"]
        assert answer["text"] == text, name
        assert await redis.hget(keys.task(answer["id"]), "text") == text, name
        assert (await Task.objects.aget(id=answer["id"])).text == text, name
        created[answer["id"]] = text
    listed = (await post(client, raw(req("task.list", {}, 2)))).json()["result"]["tasks"]
    assert {t["id"]: t["text"] for t in listed} == created
    # The bytes on the wire carry the text as JSON escapes of the same code points (no HTML escaping).
    response = await post(client, raw(req("task.create", {"text": TEXTS["html"]}, 3)))
    assert b"<script>alert('x') & \\\"quotes\\\"</script>" in response.content


async def test_optional_output_fields_are_omitted_not_null(client, redis):
    # task.claim with nothing to claim answers exactly {"claimed": false} (no taskId/task keys).
    from tests.factories import register_instance

    await register_instance(redis, "w-omit")
    answer = (await post(client, raw(req("task.claim", {"workerId": "w-omit"}, 1)))).json()
    assert answer["result"] == {"claimed": False}
    # A listed task without attachments has no attachmentKeys/resultAttachment keys at all.
    await post(client, raw(req("task.create", {"text": "plain"}, 2)))
    [task] = (await post(client, raw(req("task.list", {}, 3)))).json()["result"]["tasks"]
    assert "attachmentKeys" not in task and "resultAttachment" not in task
    assert task["attachmentCount"] == 0
    # Fields the SPEC types as "|null" are present as null.
    assert task["assignedTo"] is None and task["completedAt"] is None and task["result"] is None


# --- answers that orjson alone cannot write -------------------------------------------------------------
async def test_lone_surrogate_in_id_or_method_is_echoed_escaped_not_a_crash(client, redis):
    response = await post(client, b'{"jsonrpc":"2.0","method":"system.health","id":"a\\ud800"}')
    assert response.status_code == 200 and b'"id":"a\\ud800"' in response.content
    assert "result" in response.json()
    response = await post(client, b'{"jsonrpc":"2.0","method":"no\\udfff","id":1}')
    assert response.status_code == 200
    assert response.json()["error"] == {"code": -32601, "message": "Method not found: no\udfff"}
    batch = await post(client, b'[{"jsonrpc":"2.0","method":"\\ud800","id":"\\ud800"}]', "/rpc/batch")
    assert batch.status_code == 200 and batch.json()[0]["id"] == "\ud800"
    await assert_still_answering(client)


async def test_lone_surrogate_in_an_unknown_key_is_invalid_params(client, redis):
    body = b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"ok","\\ud800":1}}'
    error = error_of(await post(client, body), -32602, rid=1)
    assert error["data"][0]["path"] == ["\ud800"]
    rest = await client.post("/task/create", content=b'{"text":"ok","\\ud800":1}')
    assert rest.status_code == 400 and rest.json()["details"][0]["path"] == ["\ud800"]
    await assert_nothing_stored(redis)


async def test_integer_ids_past_64_bits_are_echoed_exactly(client, redis):
    for literal in (b"18446744073709551616", b"-98765432109876543210987", b"9223372036854775808"):
        body = b'{"jsonrpc":"2.0","method":"system.health","id":' + literal + b"}"
        response = await post(client, body)
        assert response.status_code == 200
        assert b'"id":' + literal + b"}" in response.content, response.content
        assert response.json()["id"] == int(literal)
    batch = b'[{"jsonrpc":"2.0","method":"system.health","id":' + b"1" + b"0" * 25 + b"}]"
    assert (await post(client, batch)).json()[0]["id"] == 10**25


# --- request metadata (SPEC §2.2.1 recommendation, §16 row 8) ---------------------------------------------
async def test_request_metadata_reaches_the_handler_context(client, redis, stream_events):
    from tests.factories import register_instance

    body = raw({"jsonrpc": "2.0", "method": "task.create", "id": 1, "params": {"text": "traced"},
                "metadata": {"sessionId": "sess-7", "correlationId": "corr-7", "timestamp": 1}})
    task_id = (await post(client, body)).json()["result"]["id"]
    [event] = await stream_events("task.created")
    assert event["metadata"]["correlationId"] == "corr-7"
    await register_instance(redis, "w-meta")
    body = raw({"jsonrpc": "2.0", "method": "task.assign", "id": 2, "params": {"taskId": task_id, "instanceId": "w-meta"},
                "metadata": {"sessionId": "sess-7"}})
    assert "result" in (await post(client, body)).json()
    [entry] = await redis.lrange(keys.task_assignment_history(task_id), 0, -1)
    assert orjson.loads(entry)["assignedBy"] == "sess-7"  # the session is the actor, not the server


async def test_body_exactly_at_the_limit_is_processed(client, redis, settings):
    settings.CB_MAX_BODY_BYTES = 2048
    prefix = b'{"jsonrpc":"2.0","method":"system.health","id":1,"pad":"'
    body = prefix + b"x" * (2048 - len(prefix) - 2) + b'"}'
    assert len(body) == 2048
    assert "result" in (await post(client, body)).json()
    assert (await post(client, body[:-2] + b'x"}')).status_code == 413


async def test_cors_headers_and_options_on_rpc(client, redis, settings):
    response = await post(client, HEALTH)
    assert response.headers["access-control-allow-origin"] == settings.CORS_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    for path in ("/rpc", "/rpc/batch"):
        preflight = await client.options(path, headers={"origin": settings.CORS_ORIGIN,
                                                        "access-control-request-method": "POST"})
        assert preflight.status_code == 204 and preflight.content == b""
        assert "content-type" in preflight.headers["access-control-allow-headers"].lower()


async def test_text_fidelity_through_update(client, redis):
    created = (await post(client, raw(req("task.create", {"text": "seed"}, 1)))).json()["result"]
    for name, text in TEXTS.items():
        body = raw(req("task.update", {"id": created["id"], "updates": {"text": text}}, 2))
        assert (await post(client, body)).json()["result"]["text"] == text, name
        assert await redis.hget(keys.task(created["id"]), "text") == text, name
        assert (await Task.objects.aget(id=created["id"])).text == text, name



async def _deep_create(client, levels: int) -> None:
    """A task.create whose body nests `levels` deep: refused as -32700, or stored whole."""
    inner = b'{"a":' * (levels - 2) + b"1" + b"}" * (levels - 2)
    body = b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"deep","metadata":' + inner + b"}}"
    answer = (await post(client, body)).json()
    if "error" in answer:
        assert answer["error"]["code"] == -32700 and answer["id"] is None, (levels, answer)
        return
    stored = await Task.objects.aget(id=answer["result"]["id"])
    depth, node = 0, stored.metadata
    while isinstance(node, dict):
        depth, node = depth + 1, node["a"]
    assert depth == levels - 2


async def test_nesting_past_the_depth_limit_is_a_parse_error(client, redis):
    # SPEC §18.1: valid JSON nested past the fixed limit (256 by default) is refused by the parser
    # (-32700), for bodies orjson can read (≤ 1024 levels) as well as deeper ones.
    for levels in (300, 1000, 5000):
        inner = b"[" * levels + b"]" * levels
        body = b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"x","metadata":{"m":' + inner + b"}}}"
        error = error_of(await post(client, body), -32700)
        assert error["message"] == "Parse error"
        error_of(await post(client, b'{"jsonrpc":"2.0","method":"task.create","id":1,"params":{"text":"\\ud800",'
                            b'"metadata":{"m":' + inner + b"}}}"), -32700)
    await assert_nothing_stored(redis)
    await assert_still_answering(client)


async def test_deep_but_accepted_bodies_are_processed(client, redis):
    for levels in (100, 250, 254):
        await _deep_create(client, levels)
    await assert_still_answering(client)


async def test_bodies_just_past_orjsons_writer_limit_are_not_internal_errors(client, redis):
    # Whatever the parser's depth limit, a body is either refused (-32700) or processed.
    for levels in (255, 256):
        await _deep_create(client, levels)
