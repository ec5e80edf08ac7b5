"""The bench's own Redis database and PostgreSQL database, derived from the operator's URLs."""

from __future__ import annotations

from claudebench.bench.environment import database_of, redis_db_of, with_database, with_redis_db


def test_redis_tcp_url_takes_the_database_in_its_path():
    assert with_redis_db("redis://127.0.0.1:6379/0", 15) == "redis://127.0.0.1:6379/15"
    assert with_redis_db("redis://:secret@host:6379", 15) == "redis://:secret@host:6379/15"
    assert (
        with_redis_db("redis://host:6379/2?db=2&socket_timeout=5", 15)
        == "redis://host:6379/15?socket_timeout=5"
    )


def test_redis_unix_url_takes_the_database_in_its_query():
    assert with_redis_db("unix:///run/x/valkey.sock?db=0", 15) == "unix:///run/x/valkey.sock?db=15"
    assert with_redis_db("unix:///run/x/valkey.sock", 3) == "unix:///run/x/valkey.sock?db=3"


def test_redis_db_of_reads_path_or_query():
    assert redis_db_of("redis://h:6379") == 0
    assert redis_db_of("redis://h:6379/4") == 4
    assert redis_db_of("unix:///s.sock?db=7") == 7


def test_database_url_keeps_socket_host_and_port():
    url = "postgresql://postgres@/claudebench?host=/tmp/cb-run&port=54329"
    bench = with_database(url, "claudebench_bench")
    assert bench == "postgresql://postgres@/claudebench_bench?host=/tmp/cb-run&port=54329"
    assert database_of(bench) == "claudebench_bench"


def test_empty_authority_keeps_its_slashes():
    assert with_database("postgresql:///claudebench?host=/s", "claudebench_bench") == (
        "postgresql:///claudebench_bench?host=/s"
    )
