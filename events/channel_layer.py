"""The channel layer of the background hand-off (events/background.py): channels_redis's core layer,
with a receive that a stopping runworker can end within a second without losing a message.

channels_redis receives with a loop of BZPOPMIN calls that returns only when a message arrives,
so a runworker stopping while nothing is queued used to wait out its whole grace period for the
receive under way (and `manage.py up` SIGKILLs a child after 10 s). Here one BZPOPMIN blocks at
most `brpop_timeout` seconds, and once `close_receive()` is called, a receive whose BZPOPMIN comes
back empty stops there for good: it never returns (the process is leaving, and ends it), and
nothing was popped. A message a BZPOPMIN does pop is returned as usual: Redis popped it, so it is
this worker's to run or to hand back (events/background.py hands it back). Cancelling the receive
instead could drop a message whose pop was already on its way back.
"""

from __future__ import annotations

import asyncio

from channels_redis.core import RedisChannelLayer


class BackgroundChannelLayer(RedisChannelLayer):
    # Seconds one BZPOPMIN blocks while the channel is empty (channels_redis: 5): the longest a
    # stopping worker waits for the receive under way. An idle worker sends two commands a second.
    brpop_timeout = 1

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.receive_closed = False
        self._popping = 0  # BZPOPMINs under way
        self._quiet = asyncio.Event()  # none under way
        self._quiet.set()

    def close_receive(self) -> None:
        """Wait for no more messages: every receive stops at its next empty BZPOPMIN."""
        self.receive_closed = True

    async def receive_settled(self) -> None:
        """After close_receive(): returns once no BZPOPMIN is under way (a message popped by the
        last one has been returned to its receiver) and channels_redis has cleared the backup
        copies of the messages it returned (else the next receiver would be given them again)."""
        await self._quiet.wait()
        cleaners = list(self.receive_cleaners)
        if cleaners:
            await asyncio.gather(*cleaners, return_exceptions=True)

    async def _brpop_with_clean(self, index, channel, timeout):  # noqa: ASYNC109 (channels_redis names it)
        # The one place channels_redis pops a message (receive_single loops over it while the
        # channel is empty), so the one place a receive can stop without losing one.
        if self.receive_closed:
            await _forever()
        self._popping += 1
        self._quiet.clear()
        try:
            member = await super()._brpop_with_clean(index, channel, timeout)
        finally:
            self._popping -= 1
            if not self._popping:
                self._quiet.set()
        if member is None and self.receive_closed:
            await _forever()
        return member


async def _forever() -> None:
    """Park the receive; it is cancelled with the rest when the worker's loop shuts down."""
    await asyncio.get_running_loop().create_future()
