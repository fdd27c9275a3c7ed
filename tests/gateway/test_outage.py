"""gateway/outage.py: after PostgreSQL fails a load, the hot path's loads fail at once for PROBE_SECONDS,
then go one at a time until one is answered."""

import asyncio
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
    release = threading.Event()
    prober = an_attempt_held(release)  # the probe, slow to come back
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


def an_attempt_held(release: threading.Event) -> threading.Thread:
    """A load under way in a thread of its own until `release` (a load that does not come back)."""
    started = threading.Event()

    def held() -> None:
        with postgres_attempt():
            started.set()
            release.wait(10)

    thread = threading.Thread(target=held)
    thread.start()
    started.wait(5)
    return thread


def test_a_load_that_does_not_come_back_makes_the_others_fail_at_once_until_it_does(monkeypatch):
    """A partition, a stuck server: nothing fails, a load just does not come back. Past ANSWER_SECONDS it
    counts as an outage; it is the probe too (PROBE_SECONDS over, no second one starts to hang beside it)."""
    monkeypatch.setattr(outage, "ANSWER_SECONDS", 0.1)
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)
    release = threading.Event()
    held = an_attempt_held(release)
    tried = []
    with postgres_attempt():
        tried.append("beside it")  # not out long yet: the others try as ever
    time.sleep(0.15)
    for _ in range(3):
        with pytest.raises(PostgresDown), postgres_attempt():
            tried.append("no")
    assert tried == ["beside it"]

    release.set()  # it came back: PostgreSQL answers
    held.join()
    with postgres_attempt():
        tried.append("yes")
    assert tried == ["beside it", "yes"]


def test_a_load_that_does_not_come_back_is_logged_as_the_outage_it_is(monkeypatch, caplog):
    monkeypatch.setattr(outage, "ANSWER_SECONDS", 0.1)
    release = threading.Event()
    with caplog.at_level("WARNING", logger="gateway.outage"):
        held = an_attempt_held(release)
        time.sleep(0.15)
        for _ in range(2):
            with pytest.raises(PostgresDown), postgres_attempt():
                pass
        release.set()
        held.join()

    assert [record.getMessage() for record in caplog.records] == [
        "PostgreSQL has not answered a load for 0.1 s; the gateway serves from memory",
        "PostgreSQL answers again",
    ]


def test_a_requests_slow_work_goes_on_while_postgresql_answers(monkeypatch):
    """A new process's first admission, a busy machine: slow, and nothing to do with PostgreSQL."""
    monkeypatch.setattr(outage, "REQUEST_WAIT_SECONDS", 0.05)
    answer = asyncio.run(outage.in_thread_within(lambda: time.sleep(0.2) or "done"))
    assert answer == "done"


def test_a_request_gives_its_postgresql_work_up_once_postgresql_is_not_answering(monkeypatch):
    monkeypatch.setattr(outage, "REQUEST_WAIT_SECONDS", 0.1)
    monkeypatch.setattr(outage, "ANSWER_SECONDS", 0.1)
    release = threading.Event()

    def load() -> None:
        with postgres_attempt():
            release.wait(10)  # the query PostgreSQL never answers

    async def request() -> float:
        started = time.monotonic()
        try:
            with pytest.raises(PostgresDown):
                await outage.in_thread_within(load)
            return time.monotonic() - started
        finally:
            release.set()  # before asyncio.run joins the thread

    assert 0.1 <= asyncio.run(request()) < 1.0
