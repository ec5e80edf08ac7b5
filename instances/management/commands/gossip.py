"""`manage.py gossip`: this server's instance — heartbeat, health gossip, leadership and, while it
leads, the cluster duties (SPEC §8, §12.1; instances/gossip.py holds one round)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import psycopg
import redis.exceptions
from django.conf import settings
from django.core.management.base import BaseCommand

from claudebench.core import pg
from claudebench.core.errors import CbError
from claudebench.core.redis import close_redis
from instances import gossip

log = logging.getLogger("claudebench.instances.gossip")


class Command(BaseCommand):
    help = "Gossip this server's health, compete for leadership and run leader duties until SIGTERM."

    def handle(self, *args, **options) -> None:
        asyncio.run(self.main())  # a forced stop ends in CancelledError: exit 1

    async def main(self) -> None:
        stop, me = asyncio.Event(), asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and me is not None:
                me.cancel()  # second signal: stop waiting
            stop.set()  # first signal: finish the round, release, unregister, exit 0

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        instance, role = settings.INSTANCE_ID, settings.INSTANCE_ROLE
        every_s = settings.CB_HEALTH_CHECK_INTERVAL_MS / 1000
        stats = gossip.GossipStats()
        try:
            # The first round registers this server, so `ready` means "visible to the cluster".
            stats.add(await gossip.gossip_round(me=instance, role=role))
            log.info(
                "gossip ready instance=%s role=%s every=%.2fs heartbeat_timeout=%dms leader_ttl=%dms",
                instance, role, every_s, settings.CB_HEARTBEAT_TIMEOUT_MS, settings.CB_LEADER_TTL_MS,
            )
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
                if stop.is_set():
                    break
                try:
                    stats.add(await gossip.gossip_round(me=instance, role=role))
                except (OSError, redis.exceptions.RedisError, psycopg.OperationalError, CbError) as exc:
                    # Redis or PostgreSQL unreachable, or state kept changing: count it, try next round.
                    stats.failed += 1
                    log.warning("gossip round failed: %s", exc)
                stats.maybe_log(log)
            was_leader = await gossip.gossip_stop(me=instance, role=role)
            log.info("gossip released leadership=%s and unregistered instance=%s", was_leader, instance)
        finally:
            await close_redis()
            await pg.close_pool()
            log.info("gossip stopped %s", stats)
