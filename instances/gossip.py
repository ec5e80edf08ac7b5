"""One round of the gossip worker (`manage.py gossip`), and its start and stop (SPEC §8, §12.1).

Every server runs one gossip worker. Each round it heartbeats its own instance, competes for
leadership, marks peers whose heartbeat is older than HEALTH_HEARTBEAT_TIMEOUT as dead, ages
out gossip entries and applies the partition rule. The leader then runs the cluster duties that
the original scheduled as jobs: failover of dead instances' tasks, metrics aggregation, state sync
and the delayed-task check. Every duty's writes are fenced on the leader key inside its script,
so a worker that lost leadership mid-round changes nothing (scripts.NotLeader).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field

from django.conf import settings
from redis.asyncio import Redis

from claudebench.core import bus, keys, scripts
from claudebench.core.clock import now_ms
from claudebench.core.redis import get_redis
from claudebench.core.scripts import NotLeader, Retry
from instances import services

log = logging.getLogger("claudebench.instances.gossip")


@dataclass
class RoundResult:
    leader: bool = False
    became_leader: bool = False
    registered: bool = False
    marked_dead: int = 0
    tasks_moved: int = 0
    tasks_placed: int = 0
    delayed: int = 0
    partition: bool = False
    healthy: int = 0
    total: int = 0


@dataclass
class GossipStats:
    """Counters for the one-line-per-minute log (STYLE §10)."""

    rounds: int = 0
    failed: int = 0
    leader_rounds: int = 0
    marked_dead: int = 0
    tasks_moved: int = 0
    tasks_placed: int = 0
    _last_log: float = field(default_factory=time.monotonic)

    def add(self, result: RoundResult) -> None:
        self.rounds += 1
        self.leader_rounds += int(result.leader)
        self.marked_dead += result.marked_dead
        self.tasks_moved += result.tasks_moved
        self.tasks_placed += result.tasks_placed

    def maybe_log(self, logger: logging.Logger, every_s: float = 60.0) -> None:
        if time.monotonic() - self._last_log >= every_s:
            self._last_log = time.monotonic()
            logger.info("gossip %s", self)

    def __str__(self) -> str:
        return (f"rounds={self.rounds} failed={self.failed} leader_rounds={self.leader_rounds} "
                f"marked_dead={self.marked_dead} tasks_moved={self.tasks_moved} tasks_placed={self.tasks_placed}")


async def gossip_register(r: Redis, *, me: str, role: str) -> scripts.Registration:
    """Register this server as an instance of kind 'server' (never offered tasks)."""
    metadata = {"kind": "server", "host": socket.gethostname(), "pid": os.getpid()}
    reg = await services.instance_register(r, instance_id=me, roles=[role], metadata=metadata, kind="server")
    await services.instance_save_quietly(instance_id=me, roles=[role], status="ACTIVE", metadata=metadata)
    return reg


async def elect(r: Redis, *, me: str) -> scripts.Leadership:
    """Take or renew leadership (SET NX with expiry); a server may take it from a client."""
    for _ in range(services.RETRIES):
        holder = await r.get(keys.LEADER_CURRENT) or ""
        try:
            return await scripts.leader_elect(r, me=me, ttl_ms=settings.CB_LEADER_TTL_MS, holder_read=holder)
        except Retry:
            continue
    return scripts.Leadership(is_leader=False, became=False, holder="")


async def gossip_round(*, me: str, role: str) -> RoundResult:
    """One round: heartbeat, leadership, failure marking, partition rule, then leader duties."""
    r, res = get_redis(), RoundResult()
    beat = await services.instance_heartbeat(r, instance_id=me, acquire=False)
    if beat is None:
        reg = await gossip_register(r, me=me, role=role)  # first round, or flushed / expired meanwhile
        res.registered, res.became_leader = True, reg.became_leader
    elif beat.previous_status != "ACTIVE":
        await services.instance_save_quietly(instance_id=me, roles=[role], status="ACTIVE")
    leadership = await elect(r, me=me)
    res.leader, res.became_leader = leadership.is_leader, res.became_leader or leadership.became
    if res.became_leader:
        log.info("leadership acquired instance=%s", me)
    now, timeout = now_ms(), settings.CB_HEARTBEAT_TIMEOUT_MS
    peers = await services.peers(r)
    dead = [p for p in peers if p.id != me and services.is_stale(p, now, timeout)]
    for peer in dead:
        marked = await _gossip(r, peer.id, "unhealthy", peer.last_seen or 0, now, mark=True)
        if marked.marked_offline:
            res.marked_dead += 1
            log.info("instance %s marked dead (last seen %s ms ago)", peer.id,
                     now - peer.last_seen if peer.last_seen else "never")
            await services.instance_save_quietly(instance_id=peer.id, roles=peer.roles, status="OFFLINE",
                                                 seen_ms=peer.last_seen)
    summary = await _gossip(r, "", "", 0, now)
    res.partition, res.healthy, res.total = summary.partition, summary.healthy, summary.total
    if res.leader:
        try:
            await leader_duties(r, me=me, dead=[p.id for p in dead], live={p.id for p in peers}, res=res)
        except NotLeader:
            log.info("leadership lost during the duties of instance=%s", me)
            res.leader = False
    return res


async def _gossip(r: Redis, instance_id: str, status: str, seen: int, now: int, *, mark: bool = False):
    return await scripts.gossip_health_update(
        r, instance_id=instance_id, status=status, last_seen_ms=seen, now_ms=now,
        stale_ms=settings.CB_HEARTBEAT_TIMEOUT_MS, drop_ms=settings.CB_GOSSIP_DROP_AFTER_MS,
        ttl_s=settings.CB_GOSSIP_TTL_S, mark_instance=mark,
    )


async def leader_duties(r: Redis, *, me: str, dead: list[str], live: set[str], res: RoundResult) -> None:
    """Failover, metrics, state sync, delayed tasks. Each write is fenced on `me` being the leader."""
    timeout = settings.CB_HEARTBEAT_TIMEOUT_MS
    failed = [d for d in dead if await r.llen(keys.instance_queue(d)) > 0]
    failed += await services.orphaned_queues(r, live)
    for dead_id in failed:
        last_seen = await r.hget(keys.instance(dead_id), "lastSeen")
        moved = await services.reassign_failed(r, dead_id=dead_id, fence=me, timeout_ms=timeout)
        if not moved:
            continue
        res.tasks_moved += len(moved)
        log.info("failover: %d task(s) of %s back to the pending queue", len(moved), dead_id)
        await bus.publish("instance.failed", {"id": dead_id, "lastSeen": int(last_seen) if last_seen else None,
                                              "tasksReassigned": len(moved)})
        if settings.CB_FAILOVER_TO_WORKER:
            res.tasks_placed += await _place(r, moved, me=me, previous=dead_id)
    await services.aggregate_metrics(r, fence=me)
    await services.sync_state(r, fence=me, synced_by=me)
    delayed = await services.delayed_tasks(r)
    res.delayed = len(delayed)
    if delayed and settings.CB_TASK_AUTO_ASSIGN:
        res.tasks_placed += await _place(r, delayed, me=me, previous=None)


async def _place(r: Redis, task_ids: list[str], *, me: str, previous: str | None) -> int:
    placed = 0
    for task_id in task_ids:
        target = await services.place_on_worker(r, task_id=task_id, fence=me)
        if target is None:
            continue
        placed += 1
        await bus.publish("task.assigned", {"taskId": task_id, "instanceId": target[0],
                                            "previousAssignment": previous},
                          {"assignedBy": me})
    return placed


async def gossip_stop(*, me: str, role: str) -> bool:
    """Clean exit: release leadership (compare-and-delete) and unregister. Returns 'was leader'."""
    r = get_redis()
    released = await scripts.leader_release(r, me=me)
    await services.instance_unregister(r, instance_id=me, reason="instance_stopped")
    await services.instance_save_quietly(instance_id=me, roles=[role], status="OFFLINE")
    return released
