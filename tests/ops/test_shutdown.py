"""SIGTERM under load: each long-running process exits 0 and loses nothing; SIGKILL of a worker
under `manage.py up` is repaired within seconds while the web keeps answering.

consume_streams, gossip and the supervisor's own SIGTERM handling have their tests beside their
code (tests/events/test_consume_streams.py, tests/instances/test_gossip.py, tests/infra/test_up.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import orjson
import pytest

from claudebench.core import keys
from tasks.models import Task
from tests.events.procs import Worker, worker_env
from tests.ops.live import ROOT, free_port, live_server, server_env
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def test_web_sigterm_under_load_answers_what_it_accepted(redis, tmp_path):
    """Every request the server answered is stored; requests after the signal are refused at the
    socket, never half-done; uvicorn exits 0 after the lifespan shutdown settled the bookkeeping."""
    with live_server(tmp_path / "web.log") as (base, proc):
        answered: list[str] = []
        failed: list[str] = []

        async def client_loop(http: httpx.AsyncClient, n: int) -> None:
            for i in range(200):
                try:
                    r = await http.post("/rpc", json={"jsonrpc": "2.0", "method": "task.create",
                                                      "params": {"text": f"load {n}-{i}"}, "id": i})
                except httpx.HTTPError as exc:
                    failed.append(type(exc).__name__)
                    return
                if r.status_code != 200 or "result" not in r.json():
                    failed.append(r.text)
                    return
                answered.append(r.json()["result"]["id"])

        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            loops = [asyncio.create_task(client_loop(http, n)) for n in range(8)]
            await wait_until(lambda: len(answered) >= 40, 30, "load")
            proc.send_signal(signal.SIGTERM)
            await asyncio.gather(*loops)
            code = await asyncio.to_thread(proc.wait, 20)
        assert code == 0, (tmp_path / "web.log").read_text()[-2000:]
        assert answered, failed
        for task_id in answered:  # answered ⇒ in Redis and in PostgreSQL
            assert await redis.exists(keys.task(task_id)), task_id
        assert await Task.objects.filter(id__in=answered).acount() == len(answered)


async def test_runworker_sigterm_under_load_hands_back_what_it_did_not_take(redis, client, handoff):
    """Queued notifications a stopped runworker did not take stay in the channel for the next one."""
    env = worker_env(CB_BACKGROUND_HANDOFF="1")
    first = Worker("runworker", "cb-background", env=env)
    second = None
    try:
        await wait_until(lambda: "Running worker for channels" in first.output() or first.proc.poll() is not None, 30,
                    "runworker")
        total = 150
        for i in range(total):  # several sessions: task.create allows 100 calls a minute per actor
            body = {"jsonrpc": "2.0", "method": "task.create", "params": {"text": f"bg {i}"},
                    "metadata": {"sessionId": f"load-{i % 5}"}}
            assert (await client.post("/rpc", content=orjson.dumps(body))).status_code == 204

        async def created() -> int:
            return await redis.xlen(keys.stream("task.created"))

        await wait_until(lambda: _at_least(created, 10), 30, "some background runs")
        assert await asyncio.to_thread(first.stop) == 0, first.output()
        assert "background worker stopped" in first.output()
        second = Worker("runworker", "cb-background", env=env)
        try:
            await wait_until(lambda: _at_least(created, total), 60, "every notification run once")
        except AssertionError:
            raise AssertionError(f"created={await created()}\nFIRST:\n{first.output()[-1500:]}\n"
                                 f"SECOND:\n{second.output()[-1500:]}") from None
        assert await Task.objects.acount() == total
        texts = [orjson.loads(f["data"])["payload"]["text"]
                 for _, f in await redis.xrange(keys.stream("task.created"))]
        assert sorted(texts) == sorted(f"bg {i}" for i in range(total))  # none lost, none twice
    finally:
        first.close()
        if second is not None:
            assert await asyncio.to_thread(second.stop) == 0, second.output()
            second.close()


async def _at_least(counter, n: int) -> bool:
    return await counter() >= n


def test_sigkilled_worker_under_up_is_back_within_seconds_and_the_web_keeps_answering(tmp_path):
    port = free_port()
    env = server_env(HOST="127.0.0.1", PORT=str(port), CB_WEB_WORKERS="1", LOG_LEVEL="INFO",
                     CB_REQUEST_LOG_LEVEL="WARNING")
    log = open(tmp_path / "up.log", "w+")
    up = subprocess.Popen([sys.executable, "manage.py", "up", "--no-engines", "--no-setup", "--grace", "10"],
                          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output() -> str:
        return (tmp_path / "up.log").read_text()

    def wait_for(pattern: str, timeout_s: float, count: int = 1) -> list[re.Match]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = list(re.finditer(pattern, output(), re.M))
            if len(found) >= count:
                return found
            assert up.poll() is None, output()[-3000:]
            assert time.monotonic() < deadline, f"no {pattern!r}:\n{output()[-3000:]}"
            time.sleep(0.05)

    base = f"http://127.0.0.1:{port}"
    errors: list[str] = []
    answers = [0]
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=base, timeout=5) as http:
            while not stop.is_set():
                try:
                    r = http.post("/rpc", json={"jsonrpc": "2.0", "method": "task.list", "params": {}, "id": 1})
                    if r.status_code != 200 or "result" not in r.json():
                        errors.append(r.text)
                    answers[0] += 1
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                time.sleep(0.02)

    try:
        wait_for(r"ready http://", 90)
        [match] = wait_for(r"gossip started pid=(\d+)", 10)
        first_pid = int(match[1])
        asker = threading.Thread(target=keep_asking, daemon=True)
        asker.start()
        while answers[0] < 5:
            assert not errors, errors
            time.sleep(0.05)
        killed_at = time.monotonic()
        os.kill(first_pid, signal.SIGKILL)
        wait_for(r"gossip killed by SIGKILL", 10)
        found = wait_for(r"gossip started pid=(\d+)", 10, count=2)
        assert int(found[1][1]) != first_pid
        back_after = time.monotonic() - killed_at
        assert back_after < 10
        seen = answers[0]
        while answers[0] < seen + 5:  # the web still answers after the restart
            time.sleep(0.05)
        stop.set()
        asker.join(10)
        assert not errors, errors
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, output()[-3000:]
        assert "stopped" in output()
    finally:
        stop.set()
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
        log.close()
