"""`manage.py up`: start order, one INSTANCE_ID, restart with backoff, shutdown on signals.

The supervisor runs as a real subprocess with a test process table (tests/infra/procs.py) of
trivial children, without engines or set-up; the last test runs the whole start-up on embedded
servers in a temporary data directory.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import urllib.request

import pytest

from claudebench.management.commands.up import PROCESSES, argv_for
from tests.infra.conftest import ROOT, clean_env, free_port, pid_alive, wait_until

pytestmark = pytest.mark.slow


def start_up(spawn, table: str, *options: str, **env: str):
    argv = [sys.executable, str(ROOT / "manage.py"), "up", "--no-engines", "--no-setup",
            "--processes", f"tests.infra.procs.{table}", *options]
    return spawn(argv, clean_env(**env))


def child_pids(up, name: str, count: int = 1) -> list[int]:
    return [int(m[1]) for m in up.wait_for(rf"^child {name} pid=(\d+)", count=count)]


def test_children_share_one_generated_instance_id_and_stop_in_reverse_order(spawn):
    up = start_up(spawn, "PAIR")
    up.wait_for(r"ready \(no web process\) instance=worker-\d+ processes=alpha,beta")
    instances = {m[1] for m in up.wait_for(r"^child \w+ pid=\d+ instance=(\S+)", count=2)}
    assert len(instances) == 1 and re.fullmatch(r"worker-\d+", instances.pop())
    pids = child_pids(up, "alpha") + child_pids(up, "beta")

    up.signal(signal.SIGTERM)

    assert up.wait() == 0, up.output
    stops = [line for line in up.lines if line.startswith("child ") and line.endswith("stopping")]
    assert stops == ["child beta stopping", "child alpha stopping"]
    assert not any(pid_alive(pid) for pid in pids)
    assert "stopped" in up.lines[-1]


def test_instance_id_from_the_environment_reaches_every_child_and_ctrl_c_stops(spawn):
    up = start_up(spawn, "PAIR", INSTANCE_ID="worker-test-7")
    matches = up.wait_for(r"^child \w+ pid=\d+ instance=(\S+)", count=2)
    assert [m[1] for m in matches] == ["worker-test-7", "worker-test-7"]

    up.signal(signal.SIGINT)

    assert up.wait() == 0, up.output


def test_a_killed_child_is_started_again_with_the_same_instance_id(spawn):
    up = start_up(spawn, "PAIR")
    [first] = child_pids(up, "alpha")
    beta = child_pids(up, "beta")

    os.kill(first, signal.SIGKILL)

    up.wait_for(r"alpha killed by SIGKILL after [\d.]+s; restart #1 in 0\.5s")
    second = child_pids(up, "alpha", count=2)[1]
    assert second != first and pid_alive(second)
    assert child_pids(up, "beta", count=1) == beta  # the sibling was left alone
    instances = {m[1] for m in up.wait_for(r"^child \w+ pid=\d+ instance=(\S+)", count=3)}
    assert len(instances) == 1
    up.signal(signal.SIGTERM)
    assert up.wait() == 0, up.output


def test_a_dead_childs_leftover_processes_are_killed_before_the_restart(spawn):
    up = start_up(spawn, "PARENT")
    [parent] = child_pids(up, "parent")
    [grandchild] = child_pids(up, "parent-grandchild")

    os.kill(parent, signal.SIGKILL)

    up.wait_for(r"parent killed by SIGKILL .*restart #1")
    wait_until(lambda: not pid_alive(grandchild), what="the orphaned grandchild to be killed")
    child_pids(up, "parent-grandchild", count=2)  # the restarted parent started a new one
    up.signal(signal.SIGTERM)
    assert up.wait() == 0, up.output


def test_a_crashing_child_is_restarted_with_exponential_backoff(spawn):
    up = start_up(spawn, "CRASHER")

    delays = [float(m[1]) for m in up.wait_for(r"crasher exit code 3 after .*restart #\d+ in ([\d.]+)s", count=3)]

    assert delays == [0.5, 1.0, 2.0]
    up.signal(signal.SIGTERM)  # during a backoff wait: no child to stop
    assert up.wait(timeout_s=5) == 0, up.output


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(spawn):
    up = start_up(spawn, "STUBBORN", "--grace", "0.5")
    [pid] = child_pids(up, "stubborn")

    up.signal(signal.SIGTERM)

    assert up.wait() == 0, up.output
    assert "stubborn did not stop within 0.5s: SIGKILL" in up.output
    assert not pid_alive(pid)


def test_a_second_signal_forces_the_stop(spawn):
    up = start_up(spawn, "STUBBORN", "--grace", "60")
    [pid] = child_pids(up, "stubborn")
    up.signal(signal.SIGINT)
    up.wait_for(r"stopping stubborn pid=")

    up.signal(signal.SIGINT)

    assert up.wait(timeout_s=10) == 1, up.output
    assert not pid_alive(pid)


def test_children_get_sigterm_when_the_supervisor_is_killed(spawn):
    up = start_up(spawn, "PAIR")
    pids = child_pids(up, "alpha") + child_pids(up, "beta")

    up.signal(signal.SIGKILL)

    up.wait_for(r"^child beta stopping")
    up.wait_for(r"^child alpha stopping")
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), what="orphaned children to exit")


def test_ready_line_waits_for_the_web_child_and_names_its_url(spawn):
    port = free_port()
    up = start_up(spawn, "WEB", PORT=str(port))

    up.wait_for(rf"ready http://127\.0\.0\.1:{port}/ instance=")

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.status == 200
    up.signal(signal.SIGTERM)
    assert up.wait() == 0, up.output


def test_default_table_runs_uvicorn_with_settings_filled_in(settings):
    settings.HOST, settings.PORT, settings.CB_WEB_WORKERS = "127.0.0.2", 3999, 3
    [web] = [child for child in PROCESSES if child.name == "web"]

    argv = argv_for(web)

    # uvicorn, behind the wrapper that makes a graceful SIGTERM exit 0 (claudebench/ops/serve.py)
    assert argv[:4] == [sys.executable, "-m", "claudebench.ops.serve", "claudebench.asgi:application"]
    joined = " ".join(argv)
    assert "--host 127.0.0.2 --port 3999 --workers 3" in joined
    assert "--loop uvloop --http httptools --no-access-log --lifespan on" in joined


def test_full_start_up_on_embedded_servers_then_sigterm_stops_them(spawn, tmp_path):
    data = tmp_path / "data"
    argv = [sys.executable, str(ROOT / "manage.py"), "up", "--processes", "tests.infra.procs.PAIR"]
    up = spawn(argv, clean_env(CB_DATA_DIR=str(data)))

    up.wait_for(r"postgres started postgresql://", timeout_s=90)
    up.wait_for(r"valkey started unix://")
    up.wait_for(r"operator account 'operator' created with password \S+", timeout_s=90)
    up.wait_for(r"ready \(no web process\)", timeout_s=60)
    up.signal(signal.SIGTERM)

    assert up.wait(timeout_s=60) == 0, up.output
    assert "stopped the embedded servers: postgres, valkey" in up.output
    assert not (data / "postgres" / "postmaster.pid").exists()
    assert not (data / "run" / "valkey.sock").exists()
