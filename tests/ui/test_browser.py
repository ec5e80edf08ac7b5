"""The operator's pages in a real browser (pytest-playwright driving Debian's chromium) against two
live server processes (uvicorn) on the test databases. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from django.conf import settings

from claudebench.core import keys
from tests.dsn import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BOUND_MS = 15_000  # an event must reach the page within this


def launch_args() -> dict:
    """The system chromium (Debian package); Playwright never downloads a browser here."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.fail(f"No chromium at {CHROMIUM}: install it (apt-get install -y chromium chromium-driver; "
                    "`make test` does this when run as root) or point CB_CHROMIUM at one.", pytrace=False)
    return {"executable_path": path, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture
async def browser():
    """Playwright's async API (the sync one runs its own loop, which the async Django/Redis
    fixtures of this suite cannot share)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(**launch_args())
        yield chromium
        await chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One uvicorn process serving claudebench.asgi on the test databases."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="cb-ui-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "claudebench.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {Path(self.log.name).read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {Path(self.log.name).read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker) -> Iterator[tuple[Server, Server]]:
    with django_db_blocker.unblock():
        dsn = database_url()
    env = {**os.environ, "DATABASE_URL": dsn, "REDIS_URL": settings.REDIS_URL, "PYTHONUNBUFFERED": "1",
           "DJANGO_SETTINGS_MODULE": "claudebench.settings", "INSTANCE_ID": "ui-test-server",
           "CB_DASHBOARD_POLL_MS": "500", "LOG_LEVEL": "WARNING"}
    pair = (Server(env), Server(env))
    try:
        for server in pair:
            server.wait_ready()
        yield pair
    finally:
        for server in pair:
            server.stop()


@pytest.fixture
def operator_login(db):
    from django.contrib.auth.models import User

    password = "op-" + secrets.token_hex(8)
    User.objects.create_user("operator-ui", password=password, is_staff=True, is_superuser=True)

    async def login(page, base: str, path: str = "/dashboard/") -> None:
        await page.goto(base + path)
        assert "/admin/login/" in page.url  # login required
        await page.fill("#id_username", "operator-ui")
        await page.fill("#id_password", password)
        await page.click("input[type=submit]")
        await page.wait_for_url(lambda url: path in url and "/login/" not in url)

    return login


async def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=not name.startswith("events"))


async def rpc(base: str, method: str, params: dict) -> dict:
    async with httpx.AsyncClient(timeout=10) as http:
        body = (await http.post(base + "/rpc", json={"jsonrpc": "2.0", "method": method, "params": params,
                                                     "id": 1})).json()
    assert "result" in body, body
    return body["result"]


async def wait_for(check, what: str, timeout_s: float = BOUND_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def live(page) -> None:
    await page.wait_for_selector("#ws-state.ok", timeout=BOUND_MS)


async def test_pages_need_a_staff_login(servers, browser, operator_login):
    s1, _ = servers
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(s1.url + "/dashboard/board/")
    assert "/admin/login/" in page.url
    await operator_login(page, s1.url, "/dashboard/")
    await live(page)
    await page.wait_for_selector("#health.ok", timeout=BOUND_MS)
    await page.wait_for_function("document.getElementById('throughput-now').textContent !== ''",
                                 timeout=BOUND_MS)  # two polls: the charts have a first point
    await shot(page, "overview")
    await page.goto(s1.url + "/dashboard/instances/")
    await live(page)
    await shot(page, "instances")
    await page.goto(s1.url + "/admin/tasks/task/")
    await shot(page, "admin-tasks")
    await page.goto(s1.url + "/api/docs/")
    await page.wait_for_selector(".swagger-ui", timeout=BOUND_MS)
    await shot(page, "api-docs")
    await context.close()


async def test_task_reaches_live_view_and_board_on_both_servers_and_drag_completes_it(
        servers, browser, operator_login, redis):
    from tasks.models import Task

    s1, s2 = servers
    first, second = await browser.new_context(), await browser.new_context()
    events1, board1 = await first.new_page(), await first.new_page()
    events2 = await second.new_page()
    await operator_login(events1, s1.url, "/dashboard/events/")
    await operator_login(events2, s2.url, "/dashboard/events/")  # the other server process
    await live(events1)
    await live(events2)
    for page in (events1, events2):  # the pattern filter
        await page.fill("#pattern", "task.*")
        await page.click("#filter button[type=submit]")
    await board1.goto(s1.url + "/dashboard/board/")
    await live(board1)

    # an event outside the filter, then a task created through JSON-RPC on server 1
    other = f"uiother{secrets.token_hex(3)}.ping"
    await redis.publish(other, orjson.dumps({"id": f"evt-{other}", "type": other, "payload": {},
                                              "timestamp": 1}).decode())
    task = await rpc(s1.url, "task.create", {"text": f"browser task {secrets.token_hex(3)}", "priority": 60})
    mine = f'tr.event-row[data-type="task.created"][data-subject="{task["id"]}"]'
    await events1.wait_for_selector(mine, timeout=BOUND_MS)
    await events2.wait_for_selector(mine, timeout=BOUND_MS)  # fed by server 2's own listener
    assert await events1.locator(f'tr[data-type="{other}"]').count() == 0
    types = await events1.locator("tr.event-row").evaluate_all("rows => rows.map(r => r.dataset.type)")
    assert types and all(t.startswith("task.") for t in types)
    await events1.click(mine)
    assert task["id"] in await events1.inner_text("#detail")
    await shot(events1, "events-server1")
    await shot(events2, "events-server2")

    card = f'.task[data-id="{task["id"]}"]'
    await board1.wait_for_selector(f"#col-pending {card}", timeout=BOUND_MS)
    await shot(board1, "board-before-drag")
    await board1.drag_and_drop(card, "#col-completed")
    await board1.wait_for_selector(f"#col-completed {card}", timeout=BOUND_MS)

    async def in_redis() -> bool:
        return await redis.hget(keys.task(task["id"]), "status") == "completed"

    async def in_postgres() -> bool:
        return await Task.objects.filter(id=task["id"], status="completed").aexists()

    await wait_for(in_redis, "Redis status completed")
    await wait_for(in_postgres, "PostgreSQL status completed")
    await events2.wait_for_selector(f'tr.event-row[data-type="task.updated"][data-subject="{task["id"]}"]',
                                    timeout=BOUND_MS)
    await shot(board1, "board-after-drag")

    # pause holds events, resume shows them
    await events1.click("#pause")
    second_task = await rpc(s2.url, "task.create", {"text": "while paused"})
    held = f'tr.event-row[data-type="task.created"][data-subject="{second_task["id"]}"]'
    await events1.wait_for_selector("#paused-count:has-text('held')", timeout=BOUND_MS)
    assert await events1.locator(held).count() == 0
    await events1.click("#pause")
    await events1.wait_for_selector(held, timeout=BOUND_MS)
    await first.close()
    await second.close()
