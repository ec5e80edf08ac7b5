"""`manage.py consume_streams` as a real process: ready line, SIGTERM under load, SIGKILL mid-batch."""

from __future__ import annotations

import asyncio
import signal

import pytest

from claudebench.core import bus as core_bus
from claudebench.core import keys

from .conftest import wait_until
from .procs import Worker, worker_env
from .sample_subscribers import EFFECTS, WORKERS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

GROUP = "cb:test-effects"


@pytest.fixture
def workers():
    started: list[Worker] = []

    def start(*args: str, **env: str) -> Worker:
        w = Worker("consume_streams", *args, env=worker_env(**env))
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


async def ready(w: Worker) -> None:
    await wait_until(lambda: "consume_streams ready" in w.output() or w.proc.poll() is not None, 30, "ready line")
    assert w.proc.poll() is None, w.output()


async def effects(redis) -> dict[str, int]:
    return {k: int(v) for k, v in (await redis.hgetall(EFFECTS)).items()}


async def group_pending(redis) -> int:
    total = 0
    async for key in redis.scan_iter(match="cb:stream:load.*"):
        total += (await redis.xpending(key, GROUP))["pending"]
    return total


async def test_unknown_subscription_is_refused(redis, workers):
    w = workers("no-such-subscription")
    code = await asyncio.to_thread(w.proc.wait, 30)
    assert code != 0 and "unknown subscription" in w.output()


async def test_sigkill_mid_batch_loses_nothing_and_each_effect_happens_once(redis, workers):
    ids = [await core_bus.publish("load.item", {"n": n}) for n in range(100)]
    first = workers("effects", CB_TEST_EFFECT_DELAY_S="0.02", CB_TEST_BATCH="20")
    await ready(first)
    await wait_until(lambda: _count(redis, 10), 30, "some effects")
    first.signal(signal.SIGKILL)
    assert await asyncio.to_thread(first.proc.wait, 10) == -signal.SIGKILL
    assert await group_pending(redis) > 0  # the killed consumer left entries pending

    second = workers("effects", CB_TEST_EFFECT_DELAY_S="0")
    await ready(second)
    await wait_until(lambda: _all_done(redis, ids), 30, "every event's effect")
    await wait_until(lambda: _no_pending(redis), 10, "nothing pending")
    assert await asyncio.to_thread(second.stop) == 0
    done = await effects(redis)
    assert set(done) == set(ids) and set(done.values()) == {1}
    counters = await redis.hgetall(keys.consumer_metrics(GROUP))
    assert int(counters["claimed"]) > 0
    assert "consume_streams stopped" in second.output()


async def _count(redis, at_least: int) -> bool:
    return await redis.hlen(EFFECTS) >= at_least


async def _all_done(redis, ids) -> bool:
    return await redis.hlen(EFFECTS) >= len(ids)


async def _no_pending(redis) -> bool:
    return await group_pending(redis) == 0


async def test_sigterm_under_load_exits_0_and_loses_nothing(redis, workers):
    w = workers("effects", CB_TEST_EFFECT_DELAY_S="0.01", CB_TEST_BATCH="10")
    await ready(w)
    ids = []
    for n in range(150):
        ids.append(await core_bus.publish("load.item", {"n": n}))
        if n == 60:
            await wait_until(lambda: _count(redis, 5), 20, "consumer busy")
            w.signal(signal.SIGTERM)
    assert await asyncio.to_thread(w.proc.wait, 20) == 0, w.output()
    assert "consume_streams stopped" in w.output()
    assert await group_pending(redis) == 0  # in-flight work was finished and acknowledged
    handled = await effects(redis)
    assert set(handled.values()) <= {1} and len(handled) < len(ids)

    rest = workers("effects")
    await ready(rest)
    await wait_until(lambda: _all_done(redis, ids), 30, "the rest delivered")
    await wait_until(lambda: "consume_streams effects processed=" in rest.output(), 10, "a counters line")
    await wait_until(lambda: _lag_recorded(redis), 10, "lag in the stats hash")
    assert await asyncio.to_thread(rest.stop) == 0
    done = await effects(redis)
    assert set(done) == set(ids) and set(done.values()) == {1}


async def _lag_recorded(redis) -> bool:
    counters = await redis.hgetall(keys.consumer_metrics(GROUP))
    return counters.get("lag") == "0" and counters.get("pending") == "0"


async def test_two_copies_share_the_work_of_one_group(redis, workers):
    a = workers("effects", CB_TEST_EFFECT_DELAY_S="0.005", CB_TEST_BATCH="10")
    b = workers("effects", CB_TEST_EFFECT_DELAY_S="0.005", CB_TEST_BATCH="10")
    await ready(a)
    await ready(b)
    ids = [await core_bus.publish("load.item", {"n": n}) for n in range(200)]
    await wait_until(lambda: _all_done(redis, ids), 30, "every effect")
    assert await asyncio.to_thread(a.stop) == 0 and await asyncio.to_thread(b.stop) == 0
    done = await effects(redis)
    assert set(done) == set(ids) and set(done.values()) == {1}
    by_worker = {int(k): int(v) for k, v in (await redis.hgetall(WORKERS)).items()}
    assert set(by_worker) == {a.proc.pid, b.proc.pid} and sum(by_worker.values()) == 200
