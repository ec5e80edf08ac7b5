"""Spreading a run's keep-alive connections over a server's workers."""

from __future__ import annotations

from claudebench.bench.spread import pick


class _Conn:
    def __init__(self, n: int):
        self.n = n

    def local_port(self) -> int:
        return self.n

    def close(self) -> None:
        pass


def _conns(*ns: int) -> list[_Conn]:
    return [_Conn(n) for n in ns]


def test_pick_splits_evenly_and_gives_the_odd_one_to_a_worker_with_spare():
    chosen = pick({1: _conns(1, 2, 3), 2: _conns(4, 5)}, 3)
    assert chosen is not None
    assert sorted(c.n for c in chosen) == [1, 2, 4]  # one each, the third from the worker with most


def test_pick_waits_until_every_worker_holds_its_share():
    assert pick({1: _conns(1, 2, 3, 4), 2: _conns(5)}, 4) is None
    assert pick({1: _conns(1, 2), 2: []}, 1) is None  # a worker still starting has answered nothing


def test_pick_one_client_uses_one_worker():
    chosen = pick({1: _conns(1), 2: _conns(2)}, 1)
    assert chosen is not None and len(chosen) == 1
