"""system.register / heartbeat / unregister (SPEC §5.3.3, §8.1–8.2, §16 rows 22, 24, 25, 31, 37)."""

from __future__ import annotations

import pytest
from django.conf import settings

from claudebench.core import keys
from claudebench.core.errors import InvalidParams
from instances.models import Instance
from tasks import services as task_services
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


async def test_register_stores_instance_sets_gossip_and_announces_it(call, redis, stream_events):
    out = await call("system.register", {"id": "relay-1", "roles": ["frontend", "relay"],
                                         "metadata": {"workingDirectory": "/srv/app", "other": 1}})
    assert out == {"registered": True}
    h = await redis.hgetall(keys.instance("relay-1"))
    assert h["status"] == "ACTIVE" and h["health"] == "healthy" and h["roles"] == '["frontend","relay"]'
    assert h["metadata"] == '{"workingDirectory":"/srv/app"}'  # unknown metadata keys dropped
    assert 0 < await redis.ttl(keys.instance("relay-1")) <= settings.CB_INSTANCE_TTL_S
    assert await redis.sismember(keys.INSTANCES_ACTIVE, "relay-1")
    assert await redis.sismember(keys.role("relay"), "relay-1")
    assert await redis.sismember(keys.specialists("frontend"), "relay-1")  # SPEC §16 row 37
    assert "react" in h["capabilities"] and h["maxCapacity"] == "5"
    assert '"healthy"' in await redis.hget(keys.GOSSIP_HEALTH, "relay-1")
    assert await redis.get(keys.LEADER_CURRENT) == "relay-1"  # first registrant leads (SPEC §8.5)
    [event] = await stream_events("instance.registered")
    assert event["payload"]["id"] == "relay-1" and event["payload"]["becameLeader"] is True
    row = await Instance.objects.aget(id="relay-1")
    assert row.status == "ACTIVE" and row.role == "frontend"
    state = await redis.hgetall(keys.STATE_GLOBAL)
    assert state["version"] == "1" and '"action":"instance_registered"' in state["data"]


async def test_second_registrant_does_not_take_leadership(call, redis, stream_events):
    await call("system.register", {"id": "a", "roles": []})
    await call("system.register", {"id": "b", "roles": []})
    assert await redis.get(keys.LEADER_CURRENT) == "a"
    assert [e["payload"]["becameLeader"] for e in await stream_events("instance.registered")] == [True, False]


async def test_registering_a_worker_hands_it_one_task_off_the_queue(call, redis, stream_events):
    low = await call("task.create", {"text": "low", "priority": 10})
    high = await call("task.create", {"text": "high", "priority": 90})
    await call("system.register", {"id": "w-1", "roles": ["worker"]})
    t = await redis.hgetall(keys.task(high["id"]))
    assert t["assignedTo"] == "w-1" and t["status"] == "in_progress"
    assert await redis.zscore(keys.PENDING_TASKS, high["id"]) is None  # SPEC §16 row 22
    assert await redis.lrange(keys.instance_queue("w-1"), 0, -1) == [high["id"]]
    assert await redis.zscore(keys.PENDING_TASKS, low["id"]) is not None
    row = await Task.objects.aget(id=high["id"])
    assert row.assigned_to == "w-1" and row.status == "in_progress"
    [event] = await stream_events("task.assigned")
    assert event["payload"] == {"taskId": high["id"], "instanceId": "w-1", "previousAssignment": None}


async def test_auto_assign_skips_tasks_that_deny_the_worker(call, redis):
    first = await call("task.create", {"text": "denies w-1", "priority": 90})
    second = await call("task.create", {"text": "fine", "priority": 10})
    await redis.hset(keys.task(first["id"]), "deny", '["w-1"]')
    await call("system.register", {"id": "w-1", "roles": ["worker"]})
    assert await redis.hget(keys.task(first["id"]), "assignedTo") == ""
    assert await redis.hget(keys.task(second["id"]), "assignedTo") == "w-1"


async def test_heartbeat_refreshes_and_revives_an_offline_instance(call, redis):
    await call("system.register", {"id": "w-2", "roles": ["worker"]})
    await redis.hset(keys.instance("w-2"), mapping={"status": "OFFLINE", "health": "unhealthy", "lastSeen": "1"})
    await redis.expire(keys.INSTANCES_ACTIVE, 2)
    assert await call("system.heartbeat", {"instanceId": "w-2"}) == {"alive": True}
    h = await redis.hgetall(keys.instance("w-2"))
    assert h["status"] == "ACTIVE" and h["health"] == "healthy" and int(h["lastSeen"]) > 1  # SPEC §16 row 31
    assert await redis.ttl(keys.INSTANCES_ACTIVE) > 2
    assert (await Instance.objects.aget(id="w-2")).status == "ACTIVE"


async def test_heartbeat_of_an_unknown_instance_is_not_alive(call, redis):
    assert await call("system.heartbeat", {"instanceId": "ghost"}) == {"alive": False}
    assert not await redis.exists(keys.instance("ghost"))


async def test_heartbeat_takes_leadership_when_nobody_holds_it(call, redis):
    await call("system.register", {"id": "a", "roles": []})
    await redis.delete(keys.LEADER_CURRENT, keys.LEADER_LOCK)
    await call("system.heartbeat", {"instanceId": "a"})
    assert await redis.get(keys.LEADER_CURRENT) == "a"  # SPEC §16 row 34


async def test_unregister_requeues_unfinished_tasks_and_cleans_every_key(call, redis, stream_events):
    await call("system.register", {"id": "w-3", "roles": ["worker"]})
    t1 = await call("task.create", {"text": "one", "priority": 70})
    t2 = await call("task.create", {"text": "two", "priority": 20})
    done = await call("task.create", {"text": "done"})
    for t in (t1, t2, done):
        await call("task.assign", {"taskId": t["id"], "instanceId": "w-3"})
    await call("task.complete", {"id": done["id"], "result": {"ok": True}})
    # an attachment index under cb:task:* (a zset) must not trip the scan (SPEC §16 row 25)
    await task_services.attachment_put(redis, task_id=t1["id"], key="notes", type="text", content="x",
                                       created_by="test")
    out = await call("system.unregister", {"instanceId": "w-3", "sessionId": "s-1", "timestamp": 1})
    assert out == {"unregistered": True, "tasksReassigned": 2}
    assert await redis.zscore(keys.PENDING_TASKS, t1["id"]) == -70  # SPEC §16 row 24: -priority
    assert await redis.zscore(keys.PENDING_TASKS, t2["id"]) == -20
    assert await redis.hget(keys.task(t1["id"]), "assignedTo") == ""
    assert await redis.hget(keys.task(done["id"]), "status") == "completed"
    for key in (keys.instance("w-3"), keys.instance_queue("w-3"), keys.capabilities("w-3")):
        assert not await redis.exists(key)
    assert not await redis.sismember(keys.INSTANCES_ACTIVE, "w-3")
    assert not await redis.sismember(keys.role("worker"), "w-3")
    assert await redis.hget(keys.GOSSIP_HEALTH, "w-3") is None
    assert (await Task.objects.aget(id=t1["id"])).assigned_to is None
    assert (await Instance.objects.aget(id="w-3")).status == "OFFLINE"
    [event] = await stream_events("instance.unregistered")
    assert event["payload"]["tasksReassigned"] == 2 and event["payload"]["sessionId"] == "s-1"


async def test_unregister_of_an_unknown_instance_answers_true(call, redis):
    assert await call("system.unregister", {"instanceId": "nobody", "sessionId": "s", "timestamp": 5}) == {
        "unregistered": True, "tasksReassigned": 0}


@pytest.mark.parametrize("params", [
    {}, {"id": "", "roles": []}, {"id": "x"}, {"id": "x", "roles": "worker"}, {"id": "x", "roles": [1]},
    {"id": 5, "roles": []}, {"id": "x", "roles": [], "metadata": {"workingDirectory": 3}},
])
async def test_register_rejects_bad_input_and_stores_nothing(call, redis, params):
    with pytest.raises(InvalidParams):
        await call("system.register", params)
    assert await redis.dbsize() == 0 or not await redis.keys("cb:instance:*")
