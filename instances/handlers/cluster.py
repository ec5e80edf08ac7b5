"""System handlers for cluster membership and coordination (SPEC §5.3.3, §8)."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import orjson
import redis.exceptions
from django.conf import settings

from claudebench.core import keys, pg, registry, scripts
from claudebench.core.clock import now_ms
from claudebench.core.errors import HandlerError
from claudebench.core.pipeline import Ctx
from claudebench.core.registry import Limits, Mcp, handler
from claudebench.core.schema import Empty, json_schema
from claudebench.core.scripts import Retry
from instances import metrics_view, services
from instances.schemas import (
    DiscoveredMethod,
    MethodMetadata,
    Services,
    SystemBatchProcessIn,
    SystemBatchProcessOut,
    SystemCheckHealthIn,
    SystemCheckHealthOut,
    SystemDiscoverIn,
    SystemDiscoverOut,
    SystemGetStateOut,
    SystemHealthOut,
    SystemHeartbeatIn,
    SystemHeartbeatOut,
    SystemMetricsIn,
    SystemMetricsOut,
    SystemQuorumVoteIn,
    SystemQuorumVoteOut,
    SystemRegisterIn,
    SystemRegisterOut,
    SystemUnregisterIn,
    SystemUnregisterOut,
)

log = logging.getLogger("claudebench.instances")


def _unhealthy(data: Empty) -> dict:
    return {"status": "unhealthy", "services": {"redis": False, "postgres": False, "mcp": False}}


@handler(
    "system.health", input=Empty, output=SystemHealthOut, declared_rate_limit=100, mutating=False,
    limits=Limits(rate=100, timeout_ms=3_000, trip_after=10, open_ms=20_000), fallback=_unhealthy,
    mcp=Mcp(title="System health", tags=("system",)),
)
async def system_health(ctx: Ctx, data: Empty) -> SystemHealthOut:
    """Report overall health: instance heartbeats and the Redis, PostgreSQL and MCP services."""
    r = ctx.redis
    postgres_ok = await pg.ping(timeout_s=1.0)
    if postgres_ok:
        await r.set(keys.SERVICE_POSTGRES, "ok", ex=3600)
    else:
        await r.delete(keys.SERVICE_POSTGRES)
    instance_keys = [key async for key in r.scan_iter(match=keys.INSTANCE_PATTERN, count=500)
                     if key.count(":") == 2]
    health = await scripts.get_system_health(
        r, instance_keys=instance_keys, now_ms=now_ms(), timeout_ms=settings.CB_HEARTBEAT_TIMEOUT_MS
    )
    status = health.status
    if not postgres_ok and status == "healthy":
        status = "degraded"
    return SystemHealthOut(
        status=status, services=Services(redis=health.redis, postgres=postgres_ok, mcp=health.mcp)
    )


# --- membership (SPEC §5.3.3, §8.1–8.2) -----------------------------------------------------------
@handler(
    "system.register", input=SystemRegisterIn, output=SystemRegisterOut, persist=True, declared_rate_limit=10,
    limits=Limits(rate=100, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Register instance", tags=("system", "instances"), examples=(
        {"description": "Register a worker", "input": {"id": "worker-1", "roles": ["worker"]}},
    )),
)
async def system_register(ctx: Ctx, data: SystemRegisterIn) -> SystemRegisterOut:
    """Register an instance (TTL 30 s, refreshed by heartbeats); a new worker is offered a task."""
    r, now = ctx.redis, now_ms()
    metadata = data.metadata.model_dump(by_alias=True, exclude_none=True) if data.metadata else {}
    reg = await services.instance_register(r, instance_id=data.id, roles=data.roles, metadata=metadata)
    await gossip_entry(r, data.id, "healthy", now)
    await services.sync_state(r, fence="", synced_by=ctx.instance_id, extra={
        "action": "instance_registered", "instanceId": data.id, "roles": data.roles})
    await services.aggregate_metrics(r, fence="")
    if ctx.persist:
        await services.instance_save_quietly(instance_id=data.id, roles=data.roles, status="ACTIVE",
                                             metadata=metadata, seen_ms=now)
    await ctx.publish("instance.registered", {"id": data.id, "roles": data.roles,
                                              "becameLeader": reg.became_leader, "timestamp": now})
    if "worker" in data.roles:
        task_id = await services.auto_assign(r, worker_id=data.id)
        if task_id:
            await ctx.publish("task.assigned", {"taskId": task_id, "instanceId": data.id, "previousAssignment": None},
                              {"assignedBy": ctx.instance_id})
    return SystemRegisterOut(registered=True)


async def gossip_entry(r, instance_id: str, status: str, seen_ms: int) -> scripts.Gossip:
    return await scripts.gossip_health_update(
        r, instance_id=instance_id, status=status, last_seen_ms=seen_ms, now_ms=now_ms(),
        stale_ms=settings.CB_HEARTBEAT_TIMEOUT_MS, drop_ms=settings.CB_GOSSIP_DROP_AFTER_MS,
        ttl_s=settings.CB_GOSSIP_TTL_S,
    )


@handler(
    "system.heartbeat", input=SystemHeartbeatIn, output=SystemHeartbeatOut, persist=True,
    declared_rate_limit=1000, limits=Limits(rate=1000, timeout_ms=2_000, trip_after=20, open_ms=10_000),
    mcp=Mcp(title="Heartbeat", tags=("system", "instances"),
            prerequisites=("Register the instance with system.register first",)),
)
async def system_heartbeat(ctx: Ctx, data: SystemHeartbeatIn) -> SystemHeartbeatOut:
    """Keep a registered instance alive; `alive: false` means register again."""
    r = ctx.redis
    try:
        beat = await services.instance_heartbeat(r, instance_id=data.instance_id)
    except redis.exceptions.RedisError:
        log.exception("heartbeat of %s failed", data.instance_id)
        return SystemHeartbeatOut(alive=False)  # SPEC §5.3.3: exceptions answer alive=false
    if beat is None:
        return SystemHeartbeatOut(alive=False)
    if beat.previous_status != "ACTIVE" and ctx.persist:  # back from OFFLINE: record it
        roles = services.roles_of(await r.hget(keys.instance(data.instance_id), "roles"))
        await services.instance_save_quietly(instance_id=data.instance_id, roles=roles, status="ACTIVE")
    return SystemHeartbeatOut(alive=True)


@handler(
    "system.unregister", input=SystemUnregisterIn, output=SystemUnregisterOut, persist=True,
    declared_rate_limit=10, limits=Limits(rate=50, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(visible=False),
)
async def system_unregister(ctx: Ctx, data: SystemUnregisterIn) -> SystemUnregisterOut:
    """Remove an instance; its pending and in-progress tasks go back to the pending queue."""
    r = ctx.redis
    roles = services.roles_of(await r.hget(keys.instance(data.instance_id), "roles"))
    gone = await services.instance_unregister(r, instance_id=data.instance_id, reason="instance_unregistered")
    count = len(gone.requeued)
    for task_id in gone.requeued:
        await services.sync_task_quietly(r, task_id)
    now = now_ms()
    await services.sync_state(r, fence="", synced_by=ctx.instance_id, extra={
        "action": "instance_unregistered", "instanceId": data.instance_id, "sessionId": data.session_id,
        "tasksReassigned": count})
    await services.aggregate_metrics(r, fence="")
    if ctx.persist and gone.existed:
        await services.instance_save_quietly(instance_id=data.instance_id, roles=roles, status="OFFLINE")
    await ctx.publish("instance.unregistered", {"id": data.instance_id, "sessionId": data.session_id,
                                                "tasksReassigned": count, "timestamp": now})
    if count:
        await _offer_to_a_worker(ctx)
    return SystemUnregisterOut(unregistered=True, tasks_reassigned=count)


async def _offer_to_a_worker(ctx: Ctx) -> None:
    """SPEC §5.3.3: requeued tasks are offered to one live worker (role-based, SPEC §16 row 22)."""
    r, now = ctx.redis, now_ms()
    workers = [p for p in await services.peers(r) if "worker" in p.roles and p.kind != "server"
               and p.status == "ACTIVE" and not services.is_stale(p, now, settings.CB_HEARTBEAT_TIMEOUT_MS)]
    if not workers:
        return
    worker = random.choice(workers).id
    task_id = await services.auto_assign(r, worker_id=worker)
    if task_id:
        await ctx.publish("task.assigned", {"taskId": task_id, "instanceId": worker, "previousAssignment": None},
                          {"assignedBy": ctx.instance_id})


# --- state and metrics (SPEC §5.3.3, §7.18) -------------------------------------------------------
def _as_list(text: str) -> list[Any]:
    value = orjson.loads(text)
    return value if isinstance(value, list) else []  # cjson encodes an empty table as {}


def _task_number(key: str) -> int:
    digits = key.rsplit("-", 1)[-1]
    return int(digits) if digits.isdigit() else 0


@handler(
    "system.get_state", input=Empty, output=SystemGetStateOut, declared_rate_limit=50, mutating=False,
    limits=Limits(rate=50, timeout_ms=5_000, trip_after=5, open_ms=30_000), fallback=lambda data: {},
    mcp=Mcp(title="System state", tags=("system",)),
)
async def system_get_state(ctx: Ctx, data: Empty) -> SystemGetStateOut:
    """Up to 10 instances, the 10 newest tasks and the 10 most recent events across all streams."""
    r = ctx.redis
    instance_keys = sorted(await services.instance_keys(r))[:10]
    task_keys = sorted(await services.task_keys(r), key=_task_number, reverse=True)[:10]
    streams = await services.scan(r, keys.STREAM_PATTERN)
    raw_instances, raw_tasks, raw_events = await scripts.get_system_state(
        r, instance_keys=instance_keys, task_keys=task_keys, stream_keys=streams, per_stream=10)
    detected, recovery, leader = await r.mget(keys.PARTITION_DETECTED, keys.PARTITION_RECOVERY, keys.LEADER_CURRENT)
    partition = {"detected": detected == "true", "recovery": recovery == "true"}
    instances = [{**i, "partition": partition, "isLeader": i.get("id") == leader} for i in _as_list(raw_instances)]
    return SystemGetStateOut(instances=instances or None, tasks=_as_list(raw_tasks) or None,
                             recent_events=_recent(_as_list(raw_events)) or None)


def _recent(entries: list[dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """Domain events only (request records are marked kind=request, SPEC §4.7), newest first."""
    events = []
    for entry in entries:
        try:
            env = orjson.loads(entry.get("data") or "null")
        except orjson.JSONDecodeError:
            continue
        if isinstance(env, dict) and (env.get("metadata") or {}).get("kind") != "request":
            events.append(env)
    events.sort(key=lambda e: e.get("timestamp") or 0, reverse=True)
    return events[:limit]


@handler(
    "system.metrics", input=SystemMetricsIn, output=SystemMetricsOut, declared_rate_limit=20, mutating=False,
    limits=Limits(rate=20, timeout_ms=3_000, trip_after=5, open_ms=30_000),
    fallback=lambda data: {"memoryUsage": metrics_view.memory_mb()},
    mcp=Mcp(title="System metrics", tags=("system", "monitoring")),
)
async def system_metrics(ctx: Ctx, data: SystemMetricsIn) -> SystemMetricsOut:
    """Events processed, tasks completed, average latency and memory; `detailed` adds every source."""
    return SystemMetricsOut.model_validate(await metrics_view.collect(ctx.redis, detailed=bool(data.detailed)))


# --- coordination (SPEC §8.6, §8.10) ----------------------------------------------------------------
@handler(
    "system.batch.process", input=SystemBatchProcessIn, output=SystemBatchProcessOut, declared_rate_limit=10,
    limits=Limits(rate=10, timeout_ms=30_000, trip_after=3, open_ms=60_000),
    mcp=Mcp(title="Process batch", tags=("system", "coordination")),
)
async def system_batch_process(ctx: Ctx, data: SystemBatchProcessIn) -> SystemBatchProcessOut:
    """Process a batch under its own lock; another processor's batch answers `processed: false`."""
    r, lock_ttl = ctx.redis, settings.CB_BATCH_LOCK_TTL_S
    held, holder, done = await scripts.coordinate_batch(
        r, processor=data.instance_id, batch_id=data.batch_id, total=len(data.items), lock_ttl_s=lock_ttl,
        progress_ttl_s=300)
    if not held:
        return SystemBatchProcessOut(processed=False, processor_id=holder, items_processed=done)
    try:
        for index, _item in enumerate(data.items, start=1):
            await asyncio.sleep(0)  # items carry no work of their own (SPEC §5.3.3); stay cancellable
            if index % 10 == 0 or index == len(data.items):
                await scripts.batch_progress(r, processor=data.instance_id, batch_id=data.batch_id,
                                             processed=index, lock_ttl_s=lock_ttl, progress_ttl_s=300)
    finally:
        await scripts.batch_release(r, processor=data.instance_id, batch_id=data.batch_id)
    await ctx.publish("batch.completed", {"batchId": data.batch_id, "processorId": data.instance_id,
                                          "itemsProcessed": len(data.items)})
    return SystemBatchProcessOut(processed=True, processor_id=data.instance_id, items_processed=len(data.items))


@handler(
    "system.quorum.vote", input=SystemQuorumVoteIn, output=SystemQuorumVoteOut, declared_rate_limit=50,
    limits=Limits(rate=50, timeout_ms=5_000, trip_after=5, open_ms=30_000),
    mcp=Mcp(title="Quorum vote", tags=("system", "coordination")),
)
async def system_quorum_vote(ctx: Ctx, data: SystemQuorumVoteIn) -> SystemQuorumVoteOut:
    """Vote on a decision; one vote per instance (the latest counts), majority of live voters."""
    r = ctx.redis
    for _ in range(services.RETRIES * 16):  # every concurrent new voter changes the set once
        stored = await r.hget(keys.quorum_decision(data.decision), "votes")
        voters = {v.get("id") for v in _as_list(stored or "[]") if isinstance(v, dict)}
        voters.add(data.instance_id)
        try:
            vote = await scripts.quorum_vote(
                r, decision=data.decision, voter=data.instance_id, value=data.value, total=data.total_instances,
                now_ms=now_ms(), voters_after=sorted(v for v in voters if isinstance(v, str)), ttl_s=300)
            break
        except Retry:
            continue
    else:
        raise HandlerError(f"Votes on {data.decision} kept changing; try again")
    if vote.newly_decided:
        await ctx.publish("quorum.decision.made", {"decision": data.decision, "value": vote.winner,
                                                   "voteCount": vote.counted,
                                                   "quorum": data.total_instances // 2 + 1})
    return SystemQuorumVoteOut(voted=True, quorum_reached=vote.reached, final_decision=vote.winner or None,
                               vote_count=vote.counted)


@handler(
    "system.check_health", input=SystemCheckHealthIn, output=SystemCheckHealthOut, declared_rate_limit=100,
    mcp=Mcp(title="Check instance health", tags=("system", "instances"),
            warnings=("Stale instances are marked OFFLINE and their tasks return to the pending queue",)),
)
async def system_check_health(ctx: Ctx, data: SystemCheckHealthIn) -> SystemCheckHealthOut:
    """Classify instances by heartbeat age; stale ones hand their tasks back (SPEC §8.7)."""
    r, now, timeout = ctx.redis, now_ms(), int(data.timeout)
    healthy, failed, reassigned = [], [], {}
    for peer in await services.peers(r):
        if peer.status != "OFFLINE" and not services.is_stale(peer, now, timeout):
            healthy.append(peer.id)
            continue
        moved = await services.reassign_failed(r, dead_id=peer.id, fence="", timeout_ms=timeout)
        if moved is None:  # it heartbeated meanwhile
            healthy.append(peer.id)
            continue
        failed.append(peer.id)
        if moved:
            reassigned[peer.id] = len(moved)
        if moved or peer.status != "OFFLINE":
            await ctx.publish("instance.failed", {"id": peer.id, "lastSeen": peer.last_seen,
                                                  "tasksReassigned": len(moved)})
    await r.hset(keys.METRICS_HEALTH, mapping={"healthyInstances": len(healthy), "failedInstances": len(failed),
                                               "lastCheck": now})
    return SystemCheckHealthOut(healthy=healthy, failed=failed, reassigned=reassigned)


@handler(
    "system.discover", input=SystemDiscoverIn, output=SystemDiscoverOut, declared_rate_limit=100, mutating=False,
    mcp=Mcp(title="Discover methods", tags=("system",)),
)
async def system_discover(ctx: Ctx, data: SystemDiscoverIn) -> SystemDiscoverOut:
    """Every handler with its JSON Schemas, in registration order; `domain` filters by prefix."""
    methods = []
    for spec in registry.specs():
        if data.domain is not None and not spec.event.startswith(f"{data.domain}."):
            continue
        methods.append(DiscoveredMethod(
            name=spec.event, description=spec.description,
            input_schema=json_schema(spec.input, mode="validation"),
            output_schema=json_schema(spec.output, mode="serialization"),
            metadata=MethodMetadata(persist=spec.persist, rate_limit=spec.declared_rate_limit),
        ))
    return SystemDiscoverOut(methods=methods)
