"""Rebuild Redis task state from PostgreSQL when Redis holds no task (SPEC §12.3)."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand

from claudebench.core import pg, scripts
from claudebench.core.redis import close_redis, get_redis
from tasks.services import tasks_hydrate


class Command(BaseCommand):
    help = "Restore tasks and queues into Redis from PostgreSQL if Redis has none (idempotent)."

    def handle(self, *args, **options) -> None:
        restored = asyncio.run(self.main())
        if restored:
            self.stdout.write(f"hydrate_redis: restored {restored} task(s) from PostgreSQL")
        elif options["verbosity"] > 1:
            self.stdout.write("hydrate_redis: Redis already holds tasks (or nothing to restore)")

    async def main(self) -> int:
        try:
            r = get_redis()
            await scripts.preload(r)
            return await tasks_hydrate(r)
        finally:
            await pg.close_pool()
            await close_redis()
