"""`manage.py gossip` as real subprocesses with shortened intervals (SPEC §8; STYLE §9–10).

Each worker gets the test databases explicitly: the test Redis URL (with its test database
number) and the test PostgreSQL database name. Waits are bounded by deadlines, never paced sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from django.conf import settings

from claudebench.core import keys, scripts
from claudebench.core.scripts import NotLeader
from instances import gossip
from instances.models import Instance
from tasks.models import Task
from tests.dsn import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

INTERVAL_MS, TIMEOUT_MS, LEADER_TTL_MS = 100, 1_000, 2_000




class Worker:
    def __init__(self, instance_id: str, log: Path, env: dict[str, str]) -> None:
        self.id, self.log = instance_id, log
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "gossip"], cwd=settings.BASE_DIR, env=env,
            stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def workers(redis, tmp_path) -> Callable[..., Worker]:
    started: list[Worker] = []

    def start(instance_id: str, **extra: str) -> Worker:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "claudebench.settings", "PYTHONUNBUFFERED": "1",
               "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL, "INSTANCE_ID": instance_id,
               "INSTANCE_ROLE": "worker", "HEALTH_CHECK_INTERVAL": str(INTERVAL_MS),
               "HEALTH_HEARTBEAT_TIMEOUT": str(TIMEOUT_MS), "CB_LEADER_TTL_MS": str(LEADER_TTL_MS), **extra}
        worker = Worker(instance_id, tmp_path / f"{instance_id}.log", env)
        started.append(worker)
        return worker

    yield start
    for worker in started:  # kill every process we started, before `redis` flushes the database
        if worker.proc.poll() is None:
            worker.proc.kill()
        worker.proc.wait(timeout=10)


async def until(check: Callable[[], Awaitable[bool]], *, within_s: float, what: str) -> float:
    """Wait for a condition with a deadline; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within_s}s: {what}")


async def ready(*ws: Worker) -> None:
    async def all_ready() -> bool:
        for w in ws:
            assert w.proc.poll() is None, f"{w.id} exited early:\n{w.output()}"
        return all("gossip ready" in w.output() for w in ws)
    await until(all_ready, within_s=60, what="workers ready")


async def test_three_workers_elect_exactly_one_leader_and_hand_over_on_sigkill(workers, redis):
    group = [workers(f"g-{n}") for n in (1, 2, 3)]
    await ready(*group)
    for w in group:
        assert await redis.hget(keys.instance(w.id), "kind") == "server"
    leaders = set()
    deadline = time.monotonic() + 3 * LEADER_TTL_MS / 1000  # several renewals
    while time.monotonic() < deadline:
        leaders.add(await redis.get(keys.LEADER_CURRENT))
        await asyncio.sleep(0.02)
    assert len(leaders) == 1 and leaders <= {"g-1", "g-2", "g-3"}, leaders
    [leader] = leaders
    assert sum("leadership acquired" in w.output() for w in group) == 1
    await until(lambda: _synced_by(redis, leader), within_s=5, what="leader ran its duties")

    victim = next(w for w in group if w.id == leader)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=10)
    killed_at = time.monotonic()

    async def new_leader() -> bool:
        return (await redis.get(keys.LEADER_CURRENT)) not in (None, leader)
    await until(new_leader, within_s=LEADER_TTL_MS / 1000 + 2, what="another worker takes over")
    took = time.monotonic() - killed_at
    assert took < LEADER_TTL_MS / 1000 + 2
    successor = await redis.get(keys.LEADER_CURRENT)
    await until(lambda: _synced_by(redis, successor), within_s=5, what="the new leader runs the duties")
    await until(lambda: _status(redis, leader, "OFFLINE"), within_s=5, what="the killed worker is marked dead")

    survivors = [w for w in group if w is not victim]
    for w in survivors:
        w.proc.send_signal(signal.SIGTERM)
    for w in survivors:
        assert w.proc.wait(timeout=20) == 0, w.output()
        assert "gossip stopped" in w.output()
        assert not await redis.exists(keys.instance(w.id))  # unregistered on a clean exit
    assert await redis.get(keys.LEADER_CURRENT) is None  # released (compare-and-delete)
    assert await Instance.objects.filter(id__in=[w.id for w in survivors], status="OFFLINE").acount() == 2


async def _synced_by(redis, instance_id: str) -> bool:
    return await redis.hget(keys.STATE_GLOBAL, "syncedBy") == instance_id


async def _status(redis, instance_id: str, status: str) -> bool:
    return await redis.hget(keys.instance(instance_id), "status") == status


async def _arrange_worker_with_tasks(call, redis) -> tuple[list[str], str]:
    """Worker w-dead holds two claimed tasks and one queued; one task stays pending."""
    await call("system.register", {"id": "w-dead", "roles": ["worker"]})
    await call("system.register", {"id": "w-live", "roles": ["worker"]})
    made = [(await call("task.create", {"text": f"job {n}", "priority": 50 + n}))["id"] for n in range(4)]
    for _ in range(2):
        assert (await call("task.claim", {"workerId": "w-dead"}))["claimed"] is True
    unassigned = [t for t in made if not await redis.hget(keys.task(t), "assignedTo")]
    queued = unassigned[0]
    await call("task.assign", {"taskId": queued, "instanceId": "w-dead"})
    held = await redis.lrange(keys.instance_queue("w-dead"), 0, -1)
    assert len(held) == 3
    spare = next(t for t in made if t not in held)
    return held, spare


async def _placements(redis, task_ids: list[str]) -> dict[str, list[str]]:
    """Where each task is: the pending queue and/or instance queues (must be exactly one place)."""
    where: dict[str, list[str]] = {t: [] for t in task_ids}
    for t in task_ids:
        if await redis.zscore(keys.PENDING_TASKS, t) is not None:
            where[t].append("pending")
    async for key in redis.scan_iter(match=keys.INSTANCE_QUEUE_PATTERN):
        for t in await redis.lrange(key, 0, -1):
            if t in where:
                where[t].append(keys.instance_id_of(key))
    return where


async def _keep_alive(call, instance_id: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await call("system.heartbeat", {"instanceId": instance_id})
        await asyncio.sleep(0.1)


async def test_a_dead_workers_tasks_return_to_the_queue_none_lost_none_duplicated(workers, call, redis):
    held, spare = await _arrange_worker_with_tasks(call, redis)
    stop = asyncio.Event()
    alive = asyncio.create_task(_keep_alive(call, "w-live", stop))
    try:
        await ready(workers("g-1"))

        async def moved() -> bool:
            return not await redis.exists(keys.instance_queue("w-dead"))
        await until(moved, within_s=TIMEOUT_MS / 1000 + 10, what="failover of w-dead")
    finally:
        stop.set()
        await alive
    where = await _placements(redis, [*held, spare])
    assert all(places == ["pending"] for places in where.values()), where
    for t in held:
        h = await redis.hgetall(keys.task(t))
        assert h["assignedTo"] == "" and h["status"] == "pending" and "w-dead" in h["deny"]
        row = await Task.objects.aget(id=t)
        assert row.assigned_to is None and row.status == "pending"
    assert await redis.hget(keys.instance("w-dead"), "status") == "OFFLINE"
    assert (await Instance.objects.aget(id="w-dead")).status == "OFFLINE"
    assert await redis.hget(keys.instance("w-live"), "status") == "ACTIVE"
    claimed = await call("task.claim", {"workerId": "w-live"})  # the work is claimable again
    assert claimed["claimed"] is True


async def test_failover_to_the_least_loaded_live_worker(workers, call, redis):
    held, spare = await _arrange_worker_with_tasks(call, redis)
    stop = asyncio.Event()
    alive = asyncio.create_task(_keep_alive(call, "w-live", stop))
    try:
        await ready(workers("g-1", CB_FAILOVER_TO_WORKER="true"))

        async def placed() -> bool:
            return len(await redis.lrange(keys.instance_queue("w-live"), 0, -1)) == 3
        await until(placed, within_s=TIMEOUT_MS / 1000 + 10, what="failover to w-live")
    finally:
        stop.set()
        await alive
    where = await _placements(redis, [*held, spare])
    assert {t: where[t] for t in held} == {t: ["w-live"] for t in held}
    assert where[spare] == ["pending"]
    for t in held:
        assert await redis.hget(keys.task(t), "assignedTo") == "w-live"
        assert (await Task.objects.aget(id=t)).assigned_to == "w-live"
    assert not await redis.exists(keys.instance_queue("g-1"))  # a server is never handed work


async def test_partition_flag_set_below_half_healthy_and_cleared_on_recovery(workers, call, redis):
    await ready(workers("g-1"))
    for n in (1, 2, 3):
        await call("system.register", {"id": f"c-{n}", "roles": []})

    async def detected() -> bool:
        return await redis.get(keys.PARTITION_DETECTED) == "true"
    await until(detected, within_s=TIMEOUT_MS / 1000 + 10, what="partition detected (1 of 4 healthy)")
    state = await call("system.get_state", {})
    assert all(i["partition"]["detected"] for i in state["instances"])

    async def recovered() -> bool:
        for n in (1, 2, 3):
            await call("system.heartbeat", {"instanceId": f"c-{n}"})
        return not await redis.exists(keys.PARTITION_DETECTED) and await redis.get(keys.PARTITION_RECOVERY) == "true"
    await until(recovered, within_s=10, what="partition cleared once all heartbeat again")


async def test_a_fenced_duty_of_a_non_leader_changes_nothing(call, redis):
    await redis.set(keys.LEADER_CURRENT, "someone-else")
    with pytest.raises(NotLeader):
        await scripts.sync_global_state(redis, state="{}", now_ms=1, fence="me", synced_by="me")
    assert not await redis.exists(keys.STATE_GLOBAL)
    await call("system.register", {"id": "w", "roles": ["worker"]})
    t = await call("task.create", {"text": "held"})
    await call("task.assign", {"taskId": t["id"], "instanceId": "w"})
    await redis.hset(keys.instance("w"), "lastSeen", "1")
    with pytest.raises(NotLeader):
        await scripts.reassign_failed_tasks(redis, dead_id="w", task_ids=[t["id"]], fence="me", now_ms=10**13,
                                            stale_ms=1000, now_iso="2026-01-01T00:00:00.000Z")
    assert await redis.lrange(keys.instance_queue("w"), 0, -1) == [t["id"]]
    assert await redis.hget(keys.task(t["id"]), "assignedTo") == "w"


async def test_an_expired_instance_with_a_queue_is_failed_over(call, redis, settings):
    settings.CB_INSTANCE_TTL_S = 1
    settings.CB_HEARTBEAT_TIMEOUT_MS = 500
    await call("system.register", {"id": "w-gone", "roles": ["worker"]})
    t = await call("task.create", {"text": "orphan"})
    await call("task.assign", {"taskId": t["id"], "instanceId": "w-gone"})

    async def expired() -> bool:
        return not await redis.exists(keys.instance("w-gone"))
    await until(expired, within_s=5, what="the instance hash expires")
    result = await gossip.gossip_round(me="srv", role="worker")
    assert result.leader and result.tasks_moved == 1
    assert await redis.zscore(keys.PENDING_TASKS, t["id"]) is not None
    assert not await redis.exists(keys.instance("w-gone"))  # never re-created (SPEC §16 row 23)
    await gossip.gossip_stop(me="srv", role="worker")
    assert await redis.get(keys.LEADER_CURRENT) is None


async def test_a_server_takes_leadership_from_a_client_but_not_from_a_live_server(call, redis):
    await call("system.register", {"id": "claude-1", "roles": ["claude-code"]})
    assert await redis.get(keys.LEADER_CURRENT) == "claude-1"
    first = await gossip.gossip_round(me="srv-a", role="worker")
    assert first.leader and first.became_leader
    assert await redis.get(keys.LEADER_CURRENT) == "srv-a" == await redis.get(keys.LEADER_LOCK)
    second = await gossip.gossip_round(me="srv-b", role="worker")
    assert not second.leader and await redis.get(keys.LEADER_CURRENT) == "srv-a"
    await call("system.heartbeat", {"instanceId": "claude-1"})  # a client never takes it back
    assert await redis.get(keys.LEADER_CURRENT) == "srv-a"
    assert await gossip.gossip_stop(me="srv-a", role="worker") is True
    third = await gossip.gossip_round(me="srv-b", role="worker")
    assert third.leader and third.became_leader
    await gossip.gossip_stop(me="srv-b", role="worker")


async def test_stale_gossip_entries_count_as_unhealthy_and_old_ones_are_dropped(redis, settings):
    now = 10_000_000
    for name, seen in (("fresh", now), ("stale", now - 5_000), ("ancient", now - 400_000)):
        await redis.hset(keys.GOSSIP_HEALTH, name, f'{{"status":"healthy","lastSeen":"{seen}"}}')
    result = await scripts.gossip_health_update(redis, instance_id="", status="", last_seen_ms=0, now_ms=now,
                                                stale_ms=1_000, drop_ms=300_000, ttl_s=300)
    assert (result.healthy, result.total) == (1, 2)
    assert await redis.hget(keys.GOSSIP_HEALTH, "ancient") is None


async def test_leader_pushes_delayed_tasks_to_the_least_loaded_worker_when_enabled(call, redis, settings):
    settings.CB_TASK_AUTO_ASSIGN, settings.CB_TASK_AUTO_ASSIGN_DELAY_MS, settings.CB_TASK_MAX_PER_WORKER = True, 0, 2
    await call("system.register", {"id": "w-busy", "roles": ["worker"]})
    await call("system.register", {"id": "w-idle", "roles": ["worker"]})
    await call("system.register", {"id": "not-a-worker", "roles": ["docs"]})
    first = await call("task.create", {"text": "already on w-busy"})
    await call("task.assign", {"taskId": first["id"], "instanceId": "w-busy"})
    made = [(await call("task.create", {"text": f"new {n}"}))["id"] for n in range(4)]
    result = await gossip.gossip_round(me="srv", role="worker")
    assert result.leader and result.tasks_placed == 3  # capacity 2 each: w-idle 2, w-busy 1 more
    idle = await redis.lrange(keys.instance_queue("w-idle"), 0, -1)
    busy = await redis.lrange(keys.instance_queue("w-busy"), 0, -1)
    assert len(idle) == 2 and len(busy) == 2 and idle[0] == made[0]  # the least loaded got the first
    assert not await redis.exists(keys.instance_queue("not-a-worker"))
    left = [t for t in made if await redis.zscore(keys.PENDING_TASKS, t) is not None]
    assert len(left) == 1 and await redis.hget(keys.task(left[0]), "assignedTo") == ""
    for t in idle:
        h = await redis.hgetall(keys.task(t))
        assert h["assignedTo"] == "w-idle" and h["status"] == "pending"  # as task.assign leaves it
        assert (await Task.objects.aget(id=t)).assigned_to == "w-idle"
    await gossip.gossip_stop(me="srv", role="worker")


async def test_delayed_tasks_stay_queued_when_auto_assign_is_off(call, redis, settings):
    settings.CB_TASK_AUTO_ASSIGN_DELAY_MS = 0
    assert settings.CB_TASK_AUTO_ASSIGN is False  # SPEC §18.5: off by default
    await call("system.register", {"id": "w", "roles": ["worker"]})
    t = await call("task.create", {"text": "waits for a claim"})
    result = await gossip.gossip_round(me="srv", role="worker")
    assert result.delayed == 1 and result.tasks_placed == 0
    assert await redis.zscore(keys.PENDING_TASKS, t["id"]) is not None
    await gossip.gossip_stop(me="srv", role="worker")
