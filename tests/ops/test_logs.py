"""Structured logs: one line per request and per handler call, text by default, JSON on request."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from tests.ops.live import live_server, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def test_text_lines_per_request_and_per_call(client, redis, caplog):
    caplog.set_level(logging.INFO, logger="claudebench")
    answer = await client.post("/rpc", headers={"x-request-id": "req-text-1"},
                               json={"jsonrpc": "2.0", "method": "task.create", "params": {"text": "log me"}, "id": 1})
    task_id = answer.json()["result"]["id"]
    assert answer.headers["x-request-id"] == "req-text-1"
    calls = [r.getMessage() for r in caplog.records if r.name == "claudebench.calls"]
    access = [r.getMessage() for r in caplog.records if r.name == "claudebench.access"]
    [call] = [line for line in calls if "req-text-1" in line]
    for part in ("handler='task.create'", "outcome='success'", f"task_id='{task_id}'", "event_id=", "duration_ms=",
                 "actor=", "transport='rpc'"):
        assert part in call, call
    [line] = [line for line in access if "req-text-1" in line]
    assert "status=200" in line and "path='/rpc'" in line


async def test_failed_call_logs_its_code(client, redis, caplog):
    caplog.set_level(logging.INFO, logger="claudebench")
    await client.post("/rpc", json={"jsonrpc": "2.0", "method": "task.update",
                                    "params": {"id": "t-missing", "updates": {"priority": 1}}, "id": 1})
    [call] = [r.getMessage() for r in caplog.records if r.name == "claudebench.calls"]
    assert "handler='task.update'" in call and "code=-32603" in call and "task_id='t-missing'" in call
    assert "outcome='success'" not in call


async def test_level_off_writes_nothing(client, redis, caplog):
    caplog.set_level(logging.WARNING, logger="claudebench.calls")
    caplog.set_level(logging.WARNING, logger="claudebench.access")
    await client.post("/rpc", json={"jsonrpc": "2.0", "method": "task.list", "params": {}, "id": 1})
    assert not [r for r in caplog.records if r.name in ("claudebench.calls", "claudebench.access")]


@pytest.mark.slow
def test_json_lines_from_a_live_server(tmp_path, redis):
    log_path = tmp_path / "server.log"
    with live_server(log_path, CB_LOG_JSON="true") as (base, _proc):
        answer = httpx.post(f"{base}/rpc", headers={"x-request-id": "req-json-1"}, timeout=10,
                            json={"jsonrpc": "2.0", "method": "task.create", "params": {"text": "json"}, "id": 1})
        task_id = answer.json()["result"]["id"]

        def lines() -> list[dict]:
            out = []
            for raw in log_path.read_text().splitlines():
                if raw.startswith("{"):
                    out.append(json.loads(raw))
            return out

        wait_until(lambda: any(e.get("request_id") == "req-json-1" and e.get("event") == "request" for e in lines()),
                   10, "the access line")
    entries = lines()
    [call] = [e for e in entries if e.get("event") == "handler_call" and e.get("request_id") == "req-json-1"]
    assert call["handler"] == "task.create" and call["task_id"] == task_id and call["outcome"] == "success"
    assert call["logger"] == "claudebench.calls" and call["level"] == "info" and "timestamp" in call
    assert isinstance(call["duration_ms"], float) and call["event_id"]
    [access] = [e for e in entries if e.get("event") == "request" and e.get("request_id") == "req-json-1"]
    assert access["status"] == 200 and access["path"] == "/rpc" and access["actor"] == "loopback"


class _CountingStream:
    def __init__(self):
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def _record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("claudebench.calls", level, __file__, 1, msg, None, None)


def test_console_handler_buffers_lines_into_few_writes():
    import time

    from claudebench.ops.logs import BufferedStreamHandler

    stream = _CountingStream()
    handler = BufferedStreamHandler(stream)
    for i in range(200):
        handler.emit(_record(logging.INFO, f"line {i}"))
    deadline = time.monotonic() + 5
    while sum(text.count("\n") for text in stream.writes) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    text = "".join(stream.writes)
    assert text.splitlines() == [f"line {i}" for i in range(200)]  # all of them, in order, by the flusher
    assert len(stream.writes) < 20


def test_console_handler_writes_errors_at_once_and_everything_on_flush():
    from claudebench.ops.logs import BufferedStreamHandler

    stream = _CountingStream()
    handler = BufferedStreamHandler(stream)
    handler.emit(_record(logging.INFO, "before"))
    handler.emit(_record(logging.ERROR, "boom"))
    assert "".join(stream.writes).splitlines() == ["before", "boom"]  # no wait for the flusher
    handler.emit(_record(logging.INFO, "last"))
    handler.flush()  # what logging.shutdown() does at exit
    assert "".join(stream.writes).splitlines() == ["before", "boom", "last"]


def test_settings_use_the_buffered_console_handler():
    from claudebench.ops.logs import BufferedStreamHandler

    assert any(isinstance(h, BufferedStreamHandler) for h in logging.getLogger().handlers)


def test_formatter_renders_time_like_the_standard_one():
    from claudebench.ops.logs import Formatter

    fast, standard = Formatter("%(asctime)s %(message)s"), logging.Formatter("%(asctime)s %(message)s")
    for created in (1_767_225_600.25, 1_767_225_600.999, 1_767_225_601.0, 1_767_225_599.5):
        record = _record(logging.INFO, "x")
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert fast.format(record) == standard.format(record)


def test_a_line_logged_just_before_exit_is_written():
    import os
    import subprocess
    import sys

    code = ("import django; django.setup(); import logging; "
            "logging.getLogger('claudebench.exit').warning('the last line')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "claudebench.settings"})
    assert done.returncode == 0, done.stderr
    assert "the last line" in done.stderr  # logging.shutdown() flushed the buffered handler


def test_request_lines_written_straight_to_the_console_match_the_standard_format():
    import os
    import subprocess
    import sys

    # A process of its own: under pytest the root logger has capture handlers, and the lines take
    # the stdlib path (the next test); here the console handler is the only one, as in a server.
    code = ("import django; django.setup(); import logging; from claudebench.ops import logs; "
            "assert logs._console_only(logs.ACCESS) is not None; "
            "logs.access(method='POST', path='/rpc', status=200, actor=None); "
            "logging.getLogger('claudebench.access').info(\"event='request' method='GET'\")")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "claudebench.settings",
                               "CB_LOG_JSON": "false", "CB_REQUEST_LOG_LEVEL": "INFO"})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "claudebench.access" in line]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO claudebench\.access "
    assert re.fullmatch(stamp + r"event='request' method='POST' path='/rpc' status=200", lines[0]), lines
    assert re.fullmatch(stamp + r"event='request' method='GET'", lines[1]), lines  # the stdlib path, same shape


def test_request_lines_take_the_stdlib_path_when_another_handler_listens():
    from claudebench.ops import logs

    extra = logging.NullHandler()
    logs.ACCESS.addHandler(extra)
    try:
        assert logs._console_only(logs.ACCESS) is None
    finally:
        logs.ACCESS.removeHandler(extra)
    noisy = logging.Filter("nothing")
    logs.ACCESS.addFilter(noisy)
    try:
        assert logs._console_only(logs.ACCESS) is None
    finally:
        logs.ACCESS.removeFilter(noisy)
