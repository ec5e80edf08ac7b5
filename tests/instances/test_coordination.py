"""system.quorum.vote and system.batch.process (SPEC §7.4, §7.7, §8.6, §8.10, §16 rows 35–36)."""

from __future__ import annotations

import asyncio

import pytest

from claudebench.core import keys, scripts
from claudebench.core.errors import HandlerError, InvalidParams

pytestmark = pytest.mark.django_db(transaction=True)


async def test_quorum_counts_each_voter_once(call, redis, stream_events):
    vote = {"decision": "deploy", "value": "yes", "totalInstances": 3}
    first = await call("system.quorum.vote", {**vote, "instanceId": "a"})
    again = await call("system.quorum.vote", {**vote, "instanceId": "a"})
    assert first == {"voted": True, "quorumReached": False, "voteCount": 1}
    assert again == {"voted": True, "quorumReached": False, "voteCount": 1}  # no double vote
    decided = await call("system.quorum.vote", {**vote, "instanceId": "b"})
    assert decided == {"voted": True, "quorumReached": True, "finalDecision": "yes", "voteCount": 2}
    [event] = await stream_events("quorum.decision.made")
    assert event["payload"] == {"decision": "deploy", "value": "yes", "voteCount": 2, "quorum": 2}
    await call("system.quorum.vote", {**vote, "instanceId": "c"})
    assert len(await stream_events("quorum.decision.made")) == 1  # announced once


async def test_a_voter_changing_its_mind_replaces_its_vote(call, redis):
    base = {"decision": "d", "totalInstances": 3}
    await call("system.quorum.vote", {**base, "instanceId": "a", "value": "no"})
    await call("system.quorum.vote", {**base, "instanceId": "b", "value": "yes"})
    out = await call("system.quorum.vote", {**base, "instanceId": "a", "value": "yes"})
    assert out["finalDecision"] == "yes" and out["voteCount"] == 2


async def test_decisions_are_kept_apart(call, redis):
    await call("system.quorum.vote", {"decision": "one", "value": "x", "instanceId": "a", "totalInstances": 3})
    out = await call("system.quorum.vote", {"decision": "two", "value": "x", "instanceId": "b", "totalInstances": 3})
    assert out["quorumReached"] is False and out["voteCount"] == 1
    assert await redis.hget(keys.QUORUM_LATEST, "name") == "two"  # the job's mirror follows the latest


async def test_votes_of_dead_instances_do_not_count(call, redis):
    for name in ("a", "b"):
        await call("system.register", {"id": name, "roles": []})
    await call("system.quorum.vote", {"decision": "d", "value": "v", "instanceId": "a", "totalInstances": 3})
    await redis.hset(keys.instance("a"), "status", "OFFLINE")
    out = await call("system.quorum.vote", {"decision": "d", "value": "v", "instanceId": "b", "totalInstances": 3})
    assert out == {"voted": True, "quorumReached": False, "voteCount": 1}


async def test_concurrent_votes_from_many_voters_are_all_counted_once(call, redis):
    votes = [call("system.quorum.vote", {"decision": "big", "value": "y", "instanceId": f"i-{n}",
                                         "totalInstances": 40}) for n in range(30)]
    await asyncio.gather(*votes)
    out = await call("system.quorum.vote", {"decision": "big", "value": "y", "instanceId": "i-0",
                                            "totalInstances": 40})
    assert out["voteCount"] == 30 and out["finalDecision"] == "y"


@pytest.mark.parametrize("params", [
    {"decision": "d", "value": "v"}, {"instanceId": "a", "value": "v"}, {"instanceId": "a", "decision": "d"},
    {"instanceId": "a", "decision": "d", "value": "v", "totalInstances": 0},
    {"instanceId": "a", "decision": "d", "value": "v", "totalInstances": "3"},
    {"instanceId": "a", "decision": "d", "value": 1},
])
async def test_quorum_rejects_bad_input(call, redis, params):
    with pytest.raises(InvalidParams):
        await call("system.quorum.vote", params)
    assert not await redis.keys("cb:quorum:*")


async def test_batch_advances_progress_and_releases_its_lock(call, redis, stream_events):
    out = await call("system.batch.process", {"batchId": "b-1", "instanceId": "p-1", "items": list(range(25))})
    assert out == {"processed": True, "processorId": "p-1", "itemsProcessed": 25}
    assert await redis.hget(keys.batch_progress("b-1"), "processed") == "25"
    assert await redis.hget(keys.BATCH_PROGRESS, "processed") == "25"
    assert not await redis.exists(keys.batch_lock("b-1")) and not await redis.exists(keys.BATCH_LOCK)
    [event] = await stream_events("batch.completed")
    assert event["payload"] == {"batchId": "b-1", "processorId": "p-1", "itemsProcessed": 25}
    again = await call("system.batch.process", {"batchId": "b-1", "instanceId": "p-2", "items": [1]})
    assert again["processed"] is True  # released, so the next processor gets it


async def test_a_held_batch_answers_the_holder_and_its_progress(call, redis):
    held, holder, _ = await scripts.coordinate_batch(redis, processor="p-1", batch_id="b-2", total=50,
                                                     lock_ttl_s=60, progress_ttl_s=300)
    assert held and holder == "p-1"
    await scripts.batch_progress(redis, processor="p-1", batch_id="b-2", processed=20, lock_ttl_s=60,
                                 progress_ttl_s=300)
    out = await call("system.batch.process", {"batchId": "b-2", "instanceId": "p-2", "items": [1, 2]})
    assert out == {"processed": False, "processorId": "p-1", "itemsProcessed": 20}
    other = await call("system.batch.process", {"batchId": "b-3", "instanceId": "p-2", "items": [1]})
    assert other["processed"] is True  # one lock per batch, not one for all (SPEC §16 row 36)


async def test_progress_from_a_processor_without_the_lock_is_refused(redis):
    await scripts.coordinate_batch(redis, processor="p-1", batch_id="b-4", total=5, lock_ttl_s=60, progress_ttl_s=300)
    with pytest.raises(HandlerError, match="Batch lock lost"):
        await scripts.batch_progress(redis, processor="p-2", batch_id="b-4", processed=5, lock_ttl_s=60,
                                     progress_ttl_s=300)
    assert await redis.hget(keys.batch_progress("b-4"), "processed") == "0"
    assert not await scripts.batch_release(redis, processor="p-2", batch_id="b-4")
    assert await redis.get(keys.batch_lock("b-4")) == "p-1"


@pytest.mark.parametrize("params", [
    {"batchId": "b", "instanceId": "p"}, {"batchId": "", "instanceId": "p", "items": []},
    {"batchId": "b", "instanceId": "p", "items": "abc"},
])
async def test_batch_rejects_bad_input(call, redis, params):
    with pytest.raises(InvalidParams):
        await call("system.batch.process", params)
    assert not await redis.keys("cb:batch:*")
