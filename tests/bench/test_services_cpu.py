"""What the soak reads of Redis's and PostgreSQL's CPU (bench/services_cpu.py), on the real servers: it grows
with the work they do, a PostgreSQL backend that has exited still counts, a server it cannot read is None."""

import os
import time
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from bench.services_cpu import postgres_cpu_seconds, readers, redis_cpu_seconds
from bench.soak import SoakResult, checkpoints, services_line

REDIS_URL = os.environ.get("REDIS_URL", "")
DATABASE_URL = os.environ.get("DATABASE_URL", "")
LOCAL_POSTGRES = DATABASE_URL.startswith(("postgres://", "postgresql://")) and (
    urlsplit(DATABASE_URL).hostname or ""
) in ("", "localhost", "127.0.0.1", "::1")


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL=redis://… (CI does)")
def test_redis_cpu_grows_with_the_commands_it_runs():
    before = redis_cpu_seconds(REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)
    pipe = client.pipeline(transaction=False)
    for i in range(50_000):
        pipe.set("hi:test:services-cpu", i)
    pipe.execute()
    client.delete("hi:test:services-cpu")
    client.close()
    after = redis_cpu_seconds(REDIS_URL)
    assert before is not None and after is not None
    assert after - before > 0.005  # 50,000 commands are tens of milliseconds of its CPU


def test_a_redis_that_does_not_answer_reads_as_none():
    assert redis_cpu_seconds("redis://127.0.0.1:9/0") is None  # the discard port: nothing listens


@pytest.mark.skipif(not LOCAL_POSTGRES, reason="needs PostgreSQL on this machine: DATABASE_URL (CI has it)")
def test_a_postgresql_backend_that_exited_still_counts():
    before = postgres_cpu_seconds(DATABASE_URL)
    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://", 1)) as connection:
        started = time.monotonic()
        connection.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()
        query_seconds = time.monotonic() - started
    time.sleep(0.3)  # the backend exits and the postmaster reaps it: its time moves to the postmaster's
    after = postgres_cpu_seconds(DATABASE_URL)
    assert before is not None and after is not None
    # The query's backend spent about its wall time on the CPU; without the reaped children's time, the
    # backend's would be gone with it and this would be ~0.
    assert after - before >= 0.3 * query_seconds


def test_a_postgresql_on_another_host_is_not_read():
    assert postgres_cpu_seconds("postgres://postgres@db.example.com:5432/hyperinfer") is None
    assert set(readers(redis_url=None, database_url="sqlite:///x.sqlite3")) == set()
    assert set(readers(redis_url="redis://h/1", database_url="postgres://h/d")) == {"Redis", "PostgreSQL"}


def test_the_soak_prints_what_a_request_cost_them():
    warmup, _ = checkpoints(40_000)
    spent = {"Redis": 2.0, "PostgreSQL": 1.8}
    result = SoakResult(40_000, 32, warmup, [], [], 12.0, services_cpu_seconds=spent)
    (line,) = services_line(result)
    assert "beside it: Redis 0.050 ms, PostgreSQL 0.045 ms of CPU per request" in line
    assert services_line(SoakResult(40_000, 32, warmup, [], [], 12.0)) == []  # neither read: no line
