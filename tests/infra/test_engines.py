"""The embedded servers: start, reuse, stop, persistence, errors, and the pytest plugin.

Every test drives them in a subprocess with its own CB_DATA_DIR, so the servers of the running
test session are never touched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import redis

from tests.infra.conftest import ROOT, clean_env

pytestmark = pytest.mark.slow


def engines(data: Path, command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "claudebench.engines", command], cwd=ROOT, env=clean_env(CB_DATA_DIR=str(data), **env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )


def in_subprocess(data: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=clean_env(CB_DATA_DIR=str(data), **env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )


@pytest.fixture
def data(tmp_path: Path):
    """A private data directory; whatever still runs on it afterwards is stopped."""
    path = tmp_path / "data"
    yield path
    engines(path, "stop")


def valkey_at(data: Path, db: int = 3) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(data / "run" / "valkey.sock"), db=db, socket_timeout=5)


def test_start_reuse_stop_and_valkey_keeps_its_data(data):
    first = engines(data, "start")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"postgres: started postgresql://postgres@/claudebench?host={data}/run&port=54329",
        f"valkey: started unix://{data}/run/valkey.sock?db=0",
    ]
    status = engines(data, "status").stdout
    assert "postgres: running pid=" in status and "valkey: running pid=" in status

    with psycopg.connect(host=str(data / "run"), port=54329, user="postgres", dbname="claudebench") as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP
    client = valkey_at(data)
    assert client.config_get("port") == {"port": "0"}  # no TCP
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("auto-aof-rewrite-min-size") == {"auto-aof-rewrite-min-size": str(256 * 1024 * 1024)}
    client.set("survives", "a restart")
    client.close()

    again = engines(data, "start")
    assert again.stdout.count("already running") == 2, again.stdout

    stopped = engines(data, "stop")
    assert stopped.stdout.splitlines() == ["postgres: stopped", "valkey: stopped"]
    assert "postgres: stopped\nvalkey: stopped" in engines(data, "status").stdout
    assert not (data / "run" / "valkey.sock").exists()
    assert not (data / "run" / ".s.PGSQL.54329").exists()

    assert engines(data, "start").returncode == 0
    with valkey_at(data) as client:
        assert client.get("survives") == b"a restart"


def test_ensure_started_reports_only_what_this_call_started(data):
    done = in_subprocess(data, """
        from claudebench import engines
        first = engines.ensure_started(postgres=False, redis=True)
        second = engines.ensure_started(postgres=False, redis=True)
        print(first, second)
        engines.stop(second)  # started nothing: stops nothing
        print(engines.status()["valkey"].split()[0])
        engines.stop(first)
        print(engines.status()["valkey"])
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "StartedEngines(postgres=False, redis=True) StartedEngines(postgres=False, redis=False)",
        "running",
        "stopped",
    ]


def test_the_last_user_out_stops_the_servers(data):
    done = in_subprocess(data, """
        import subprocess, sys
        from claudebench import engines
        mine = engines.ensure_started(postgres=False, redis=True)
        other = subprocess.Popen(
            [sys.executable, "-c", "import sys; from claudebench import engines; "
             "h = engines.ensure_started(postgres=False, redis=True); print(h, flush=True); "
             "sys.stdin.read(); print(engines.stop(h), flush=True)"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        print("other:", other.stdout.readline().strip())
        print("mine:", engines.stop(mine))
        print(engines.status()["valkey"].split(",", 1)[1].strip())
        other.stdin.close()
        print("other:", other.stdout.readline().strip())
        other.wait()
        print(engines.status()["valkey"])
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "other: StartedEngines(postgres=False, redis=False)",  # reused what the first one started
        "mine: StartedEngines(postgres=False, redis=False)",  # the other still uses it: not stopped
        "in use by 1 process; stops after the last",
        "other: StartedEngines(postgres=False, redis=True)",  # the last user out stopped it
        "stopped",
    ]


def test_servers_left_by_a_killed_user_are_stopped_by_the_next_user_to_finish(data):
    killed = in_subprocess(data, """
        import os, signal
        from claudebench import engines
        engines.ensure_started(postgres=False, redis=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert killed.returncode == -9
    assert "users have exited without stopping it" in engines(data, "status").stdout

    done = in_subprocess(data, """
        from claudebench import engines
        print(engines.stop(engines.ensure_started(postgres=False, redis=True)))
    """)
    assert done.stdout.strip() == "StartedEngines(postgres=False, redis=True)", done.stderr


def test_servers_started_from_the_command_line_are_kept_running(data):
    assert engines(data, "start", DATABASE_URL="postgresql://x@/y").returncode == 0

    done = in_subprocess(data, """
        from claudebench import engines
        print(engines.stop(engines.ensure_started(postgres=False, redis=True)))
    """)

    assert done.stdout.strip() == "StartedEngines(postgres=False, redis=False)", done.stderr
    assert "kept until `python -m claudebench.engines stop`" in engines(data, "status").stdout


def test_servers_started_without_keep_stop_when_the_process_exits(data):
    done = in_subprocess(data, """
        from claudebench import engines
        print(engines.ensure_started(postgres=False, redis=True))
    """)
    assert done.returncode == 0, done.stderr
    assert "redis=True" in done.stdout
    assert "valkey: stopped" in engines(data, "status").stdout


def test_nothing_starts_for_a_server_given_by_url(data):
    done = engines(data, "start", DATABASE_URL="postgresql://x@/y", REDIS_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "postgres: not started (DATABASE_URL is set)",
        "valkey: not started (REDIS_URL is set)",
    ]
    assert not data.exists()


def test_an_unusable_data_directory_is_one_clear_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = engines(blocker / "data", "start")
    assert done.returncode == 1
    assert done.stderr.strip() == f"engines: error: cannot create directory {blocker}/data: Not a directory"


def test_a_server_that_dies_at_start_is_reported_with_its_log(data):
    (data / "run" / "valkey.sock" / "in-the-way").mkdir(parents=True)  # it cannot bind its socket
    done = engines(data, "start", DATABASE_URL="postgresql://x@/y")
    assert done.returncode == 1
    first, *log = done.stderr.splitlines()
    assert first.startswith(f"engines: error: Valkey did not answer on {data}/run/valkey.sock; last lines of")
    assert any("Failed opening Unix socket" in line for line in log), done.stderr


def test_plugin_starts_servers_for_the_session_and_stops_them_after(data, tmp_path):
    inner = tmp_path / "test_inner.py"
    inner.write_text(textwrap.dedent(f"""
        import socket, psycopg

        def test_servers_answer():
            with socket.socket(socket.AF_UNIX) as s:
                s.connect({str(data / "run" / "valkey.sock")!r})
                s.sendall(b"PING\\r\\n")
                assert s.recv(16) == b"+PONG\\r\\n"
            with psycopg.connect(host={str(data / "run")!r}, port=54329, user="postgres", dbname="claudebench"):
                pass
    """))
    argv = [sys.executable, "-m", "pytest", "-p", "tests.plugins.engines", "-p", "no:django", "-p", "no:cacheprovider",
            "-c", "/dev/null", "--rootdir", str(tmp_path), str(inner)]
    done = subprocess.run(argv, cwd=ROOT, env=clean_env(CB_DATA_DIR=str(data), PYTHONPATH=str(ROOT)),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "postgres: stopped\nvalkey: stopped" in engines(data, "status").stdout


def test_plugin_does_nothing_when_both_urls_are_set(tmp_path):
    inner = tmp_path / "test_inner.py"
    inner.write_text("def test_nothing():\n    pass\n")
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "pytest", "-p", "tests.plugins.engines", "-p", "no:django", "-p", "no:cacheprovider",
            "-c", "/dev/null", "--rootdir", str(tmp_path), str(inner)]
    env = clean_env(CB_DATA_DIR=str(data), PYTHONPATH=str(ROOT),
                    DATABASE_URL="postgresql://x@/y", REDIS_URL="redis://127.0.0.1:1/0")
    done = subprocess.run(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not data.exists()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_no_tcp_port_is_opened(data):
    assert engines(data, "start").returncode == 0
    pids = engines(data, "status").stdout
    listening = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
    for line in pids.splitlines()[:2]:
        pid = int(line.split("pid=")[1].split()[0])
        inodes = {
            link.readlink().name[len("socket:["):-1]
            for link in Path(f"/proc/{pid}/fd").iterdir()
            if link.readlink().name.startswith("socket:[")
        }
        tcp = [row for row in listening.splitlines()[1:] if row.split()[9] in inodes]
        assert tcp == [], f"{line}: {tcp}"
