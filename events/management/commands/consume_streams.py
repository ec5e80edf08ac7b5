"""`manage.py consume_streams [subscription ...]`: run durable subscriptions until SIGTERM (SPEC §4.7).

Each subscription is a consumer group over the cb:stream:* keys it matches (found by SCAN every
CB_BUS_DISCOVER_INTERVAL_MS; groups created at id 0 with MKSTREAM); this process is one consumer
of each group, so several copies share the work. Entries idle past CB_BUS_CLAIM_IDLE_MS (their
consumer died) are claimed with XAUTOCLAIM. The first SIGTERM/SIGINT stops reading, finishes and
acknowledges what is in flight, and exits 0; a second one stops waiting (exit 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from claudebench.core import keys, pg
from claudebench.core.redis import close_redis, get_redis
from events import outbox, subscriptions
from events.consumer import Counters, GroupConsumer
from events.redis_bus import RedisBus

log = logging.getLogger("claudebench.events.consume_streams")


class Command(BaseCommand):
    help = "Run the durable event subscriptions (all, or those named) until SIGTERM."
    requires_system_checks = []  # a worker; `manage.py check` and migrate run them

    def add_arguments(self, parser) -> None:
        parser.add_argument("subscriptions", nargs="*", help="subscription names (default: all registered)")
        parser.add_argument("--consumer", default="", help="consumer name (default: <INSTANCE_ID>:<pid>)")

    def handle(self, *args, **options) -> None:
        subs = subscriptions.all()
        wanted = options["subscriptions"]
        if wanted:
            known = {s.name: s for s in subs}
            missing = [name for name in wanted if name not in known]
            if missing:
                raise CommandError(f"unknown subscription(s): {', '.join(missing)}; known: {', '.join(sorted(known))}")
            subs = [known[name] for name in wanted]
        if not subs:
            raise CommandError("no subscriptions registered (settings.CB_SUBSCRIPTION_MODULES)")
        name = options["consumer"] or f"{settings.INSTANCE_ID}:{os.getpid()}"
        asyncio.run(self.main(subs, name))

    async def main(self, subs: list[subscriptions.Subscription], name: str) -> None:
        stop, me = asyncio.Event(), asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and me is not None:
                me.cancel()  # second signal: stop waiting
            stop.set()  # first signal: finish and ack what is in flight, then exit 0

        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, on_signal)
        consumers = [GroupConsumer(sub, name, stop) for sub in subs]
        try:
            for consumer in consumers:
                await consumer.discover()
            log.info(
                "consume_streams ready consumer=%s subscriptions=%s streams=%s block=%dms claim_idle=%dms",
                name, ",".join(s.name for s in subs), ",".join(str(len(c.streams)) for c in consumers),
                settings.CB_BUS_BLOCK_MS, settings.CB_BUS_CLAIM_IDLE_MS,
            )
            runs = [asyncio.create_task(c.run(), name=f"consume:{c.sub.name}") for c in consumers]
            reporter = asyncio.create_task(self.report(consumers, stop))
            done, _ = await asyncio.wait(runs, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if t.exception() is not None]
            stop.set()
            await asyncio.gather(*runs, return_exceptions=True)
            reporter.cancel()
            if failed:
                log.error("consume_streams stopping: %s", failed[0].exception(), exc_info=failed[0].exception())
                raise CommandError("a subscription loop failed", returncode=1)
        finally:
            await outbox.close()  # events the subscribers published through the bus
            await pg.close_pool()
            await close_redis()
            total = Counters()
            for consumer in consumers:
                total.add(consumer.totals)
            log.info("consume_streams stopped consumer=%s %s", name, total)

    async def report(self, consumers: list[GroupConsumer], stop: asyncio.Event) -> None:
        """One counters line per subscription every CB_BUS_STATS_INTERVAL_S."""
        bus = RedisBus()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.CB_BUS_STATS_INTERVAL_S)
            if stop.is_set():
                return
            try:
                groups = await bus.group_stats()
            except Exception as exc:  # stats are best effort; the loops go on
                log.warning("stats unavailable: %s", exc)
                continue
            async with get_redis().pipeline(transaction=False) as pipe:
                for c in consumers:  # SPEC §4.7: the stats hash carries lag too
                    g = groups.get(c.sub.group, {})
                    pipe.hset(keys.consumer_metrics(c.sub.group),
                              mapping={"lag": g.get("lag", 0), "pending": g.get("pending", 0)})
                await pipe.execute()
            for c in consumers:
                g = groups.get(c.sub.group, {})
                log.info("consume_streams %s %s streams=%d pending=%s lag=%s", c.sub.name, c.totals,
                         len(c.streams), g.get("pending"), g.get("lag"))
