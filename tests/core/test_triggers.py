"""Handler triggering through pub/sub (SPEC §4.4): a message on a handler's channel runs it once."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from claudebench.core import keys, triggers
from claudebench.core.bus import envelope

pytestmark = pytest.mark.django_db(transaction=True)


async def _created_texts(redis) -> list[str]:
    entries = await redis.xrange(keys.stream("task.created"))
    return [orjson.loads(f["data"])["payload"]["text"] for _, f in entries]


async def test_a_message_on_a_handler_channel_runs_the_handler_once(redis, settings):
    settings.CB_BACKGROUND_HANDOFF = False
    stop = asyncio.Event()
    listener = asyncio.create_task(triggers.listen(stop))
    try:
        text = f"triggered {id(stop)}"  # pub/sub ignores database numbers: our own text only
        env = orjson.dumps(envelope("task.create", {"text": text})).decode()
        deadline = asyncio.get_running_loop().time() + 10
        while text not in await _created_texts(redis):
            assert asyncio.get_running_loop().time() < deadline, "the triggered task.create never ran"
            await redis.publish(keys.channel("task.create"), env)  # until the listener is subscribed
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert (await _created_texts(redis)).count(text) == 1  # one envelope id, one run
    finally:
        stop.set()
        await asyncio.wait_for(listener, 5)
