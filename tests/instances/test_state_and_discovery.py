"""system.get_state, system.metrics, system.discover, system.check_health (SPEC §5.3.3, §7.18)."""

from __future__ import annotations

import pytest

from claudebench.core import keys, registry
from claudebench.core.errors import InvalidParams

pytestmark = pytest.mark.django_db(transaction=True)


async def test_get_state_lists_instances_tasks_and_recent_domain_events(call, redis):
    await call("system.register", {"id": "w-1", "roles": ["worker"]})
    made = [await call("task.create", {"text": f"t{n}"}) for n in range(12)]
    await redis.zadd(keys.task_attachments(made[0]["id"]), {"k": 1})  # not a task hash: skipped
    out = await call("system.get_state", {})
    assert [i["id"] for i in out["instances"]] == ["w-1"]
    assert out["instances"][0]["isLeader"] is True and out["instances"][0]["partition"] == {
        "detected": False, "recovery": False}
    assert {t["id"] for t in out["tasks"]} == {m["id"] for m in made[-10:]}  # the 10 newest
    types = [e["type"] for e in out["recentEvents"]]
    assert len(types) == 10 and set(types) <= {"task.created", "instance.registered", "task.assigned"}
    stamps = [e["timestamp"] for e in out["recentEvents"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_get_state_of_an_empty_system_omits_every_list(call, redis):
    assert await call("system.get_state", {}) == {}


async def test_metrics_reads_the_counters_others_write(call, redis):
    await redis.hset(keys.METRICS_QUEUES, mapping={"tasksCompleted": "4", "pendingTasks": "2"})
    await redis.hset("cb:metrics:events:task.create", mapping={"count": "3", "avgLatency": "10"})
    await redis.hset("cb:metrics:events:task.list", mapping={"count": "1", "avgLatency": "30"})
    await redis.hset(keys.METRICS_COUNTERS, mapping={"ratelimit:task.create:blocked": "2", "circuit:x:opened": "1"})
    await redis.set(keys.circuit_key("task.list", "state"), "OPEN")
    out = await call("system.metrics", {})
    assert out["tasksCompleted"] == 4 and out["averageLatency"] == 15.0
    assert out["eventsProcessed"] >= 4 and out["memoryUsage"] > 0
    assert "handlers" not in out
    detailed = await call("system.metrics", {"detailed": True})
    assert detailed["handlers"]["task.create"]["rateLimitHits"] == 2
    assert detailed["handlers"]["task.list"]["circuitState"] == "OPEN"
    assert detailed["handlers"]["task.create"]["circuitState"] == "CLOSED"
    assert detailed["counters"]["ratelimit"]["task.create:blocked"] == 2
    assert detailed["queue"]["pending"] == 2


async def test_metrics_of_a_fresh_system_always_has_memory_usage(call, redis):
    out = await call("system.metrics", {"detailed": False})
    assert isinstance(out["memoryUsage"], float | int)


async def test_discover_lists_every_handler_with_json_schemas(call, redis):
    out = await call("system.discover", {})
    assert [m["name"] for m in out["methods"]] == [s.event for s in registry.specs()]
    register = next(m for m in out["methods"] if m["name"] == "system.register")
    assert register["inputSchema"]["type"] == "object"
    assert set(register["inputSchema"]["required"]) == {"id", "roles"}
    assert register["metadata"] == {"persist": True, "rateLimit": 10}
    only = await call("system.discover", {"domain": "system"})
    assert only["methods"] and all(m["name"].startswith("system.") for m in only["methods"])


async def test_check_health_fails_stale_instances_and_requeues_their_tasks(call, redis, stream_events):
    await call("system.register", {"id": "fresh", "roles": ["worker"]})
    await call("system.register", {"id": "stale", "roles": ["worker"]})
    t = await call("task.create", {"text": "held"})
    await call("task.assign", {"taskId": t["id"], "instanceId": "stale"})
    await redis.hset(keys.instance("stale"), "lastSeen", "1")
    out = await call("system.check_health", {"timeout": 10_000})
    assert out == {"healthy": ["fresh"], "failed": ["stale"], "reassigned": {"stale": 1}}
    assert await redis.zscore(keys.PENDING_TASKS, t["id"]) is not None
    assert await redis.hget(keys.instance("stale"), "status") == "OFFLINE"
    [event] = await stream_events("instance.failed")
    assert event["payload"] == {"id": "stale", "lastSeen": 1, "tasksReassigned": 1}
    assert (await redis.hgetall(keys.METRICS_HEALTH))["failedInstances"] == "1"


@pytest.mark.parametrize("event, params", [
    ("system.check_health", {"timeout": "10"}), ("system.check_health", {"timeout": 0}),
    ("system.discover", {"domain": 5}), ("system.metrics", {"detailed": "yes"}),
    ("system.heartbeat", {}), ("system.heartbeat", {"instanceId": ""}),
    ("system.unregister", {"instanceId": "a", "sessionId": "s"}),
    ("system.unregister", {"instanceId": "a", "sessionId": "s", "timestamp": "now"}),
])
async def test_bad_input_is_invalid_params(call, redis, event, params):
    with pytest.raises(InvalidParams):
        await call(event, params)


def test_mcp_visibility_follows_the_spec():
    hidden = {s.event for s in registry.specs() if s.event.startswith("system.") and not s.mcp.visible}
    assert hidden == {"system.unregister", "system.redis.keys", "system.redis.get", "system.postgres.tables",
                      "system.postgres.query"}  # SPEC §2.7; system.flush stays visible
