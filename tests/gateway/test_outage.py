"""gateway/outage.py: after PostgreSQL fails a load, the hot path's loads fail at once for PROBE_SECONDS,
then go one at a time until one is answered."""

import threading
import time

import pytest
from django.db import OperationalError, ProgrammingError

from gateway import outage
from gateway.outage import PostgresDown, postgres_attempt


def failing_load() -> None:
    with postgres_attempt():
        raise OperationalError("connection refused")


def test_after_a_failure_loads_fail_at_once_then_one_tries(monkeypatch):
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.1)
    with pytest.raises(OperationalError) as first:
        failing_load()
    assert type(first.value) is OperationalError  # tried

    tried = []
    with pytest.raises(PostgresDown), postgres_attempt():
        tried.append("no")  # not run: known down
    assert tried == []
    time.sleep(0.11)
    with postgres_attempt():
        tried.append("yes")  # answered: up again
    with postgres_attempt():
        tried.append("yes")
    assert tried == ["yes", "yes"]


def test_while_it_is_down_one_thread_at_a_time_finds_out(monkeypatch):
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)
    with pytest.raises(OperationalError):
        failing_load()
    probing, release = threading.Event(), threading.Event()

    def slow_probe() -> None:
        with postgres_attempt():
            probing.set()
            release.wait(5)

    prober = threading.Thread(target=slow_probe)
    prober.start()
    probing.wait(5)
    # A second one does not pile up behind the pool's timeout.
    with pytest.raises(PostgresDown), postgres_attempt():
        pass
    release.set()
    prober.join()
    with postgres_attempt():  # the probe was answered: everyone tries again
        pass


def test_an_error_that_is_not_a_connection_failure_leaves_it_up():
    with pytest.raises(ProgrammingError), postgres_attempt():
        raise ProgrammingError("syntax error")
    with postgres_attempt():
        pass


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(monkeypatch, caplog):
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)
    with caplog.at_level("WARNING", logger="gateway.outage"):
        for _ in range(3):
            with pytest.raises(OperationalError):
                failing_load()
        with postgres_attempt():
            pass
        with postgres_attempt():
            pass

    assert [record.getMessage() for record in caplog.records] == [
        "PostgreSQL does not answer; the gateway serves from memory",
        "PostgreSQL answers again",
    ]


def test_attempted_runs_a_load_unless_postgresql_is_known_down():
    calls: list[int] = []
    assert outage.attempted(lambda n: calls.append(n) or n, 7) == 7
    with pytest.raises(OperationalError):
        failing_load()

    with pytest.raises(PostgresDown):
        outage.attempted(calls.append, 8)
    assert calls == [7]
