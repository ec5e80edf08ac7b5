"""What a measure function gets: run options, the bench databases, and ways to serve and load."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from django.conf import settings

from claudebench.bench.environment import BenchEnv
from claudebench.bench.loadgen import BodyFactory, Target, Validator, run_load
from claudebench.bench.servers import RssPeak, Server, uvicorn_server
from claudebench.bench.stats import Measurement

PRODUCT_APP = "claudebench.asgi:application"


@dataclass
class Context:
    env: BenchEnv
    warmup_s: float
    duration_s: float
    workers: int
    say: Callable[[str], None]
    cb_url: str | None = None  # an already running product server (env CB_URL)

    @contextlib.asynccontextmanager
    async def serve(
        self, app: str, *, factory: bool = False, settings_module: str | None = None
    ) -> AsyncIterator[Server]:
        """Run `app` under production uvicorn against the bench databases for the block."""
        extra = {"DJANGO_SETTINGS_MODULE": settings_module} if settings_module else {}
        async with uvicorn_server(
            app, env=self.env.child_env(**extra), workers=self.workers, cwd=settings.BASE_DIR, factory=factory
        ) as server:
            self.say(f"  serving {app} with {self.workers} worker(s) at {server.url}")
            yield server

    @contextlib.asynccontextmanager
    async def product(self) -> AsyncIterator[Server]:
        """The real server: the one CB_URL names, or `claudebench.asgi:application` started here."""
        if self.cb_url:
            self.say(f"  using the server at {self.cb_url} (CB_URL): its own data, RSS not sampled")
            yield Server(url=self.cb_url.rstrip("/"))
            return
        async with self.serve(PRODUCT_APP) as server:
            yield server

    async def http_load(
        self, server: Server, path: str, make_body: BodyFactory, validate: Validator, clients: int
    ) -> Measurement:
        """POST bodies to `path` from `clients` keep-alive connections; sample the server's RSS."""
        target = Target(host=server.host, port=server.port, path=server.path(path))
        async with RssPeak(server.pid) as rss:
            measurement = await run_load(
                target, make_body=make_body, validate=validate, clients=clients,
                warmup_s=self.warmup_s, duration_s=self.duration_s, server_pid=server.pid,
            )  # fmt: skip
        measurement.peak_rss_bytes = rss.peak
        self.say(f"    {clients:>3} client(s): {measurement.summary()}")
        return measurement
