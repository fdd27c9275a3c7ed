"""gateway/auth.py's KeyCache: a key is read from the database at most once a KEY_CACHE_SECONDS, however many
requests find it stale at once, and a key revoked meanwhile is still refused within that time."""

import threading
import time
import uuid
from dataclasses import replace

import pytest
from django.db import OperationalError

from console.services.secrets import PLAYGROUND_KEY_PREFIX
from core.errors import ApiError, ErrorCode
from gateway import auth, outage
from gateway.auth import KEY_CACHE_SECONDS, Caller, KeyCache
from gateway.load_ahead import wait_for_loads

CALLER = Caller(
    workspace_id=uuid.uuid4(),
    workspace_locked=False,
    api_key_id=7,
    allowed_models=frozenset(),
    rate_limit_rpm=None,
    source="api",
)


class SlowDatabase:
    """Stands in for `_load_api_key`: counts its loads, each taking `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.loads = seconds, 0
        self.answer: Caller | None = CALLER
        self.expires = float("inf")  # the key's expiry, epoch seconds
        self.down = False  # PostgreSQL does not answer

    def __call__(self, secret: str) -> tuple[Caller | None, float]:
        self.loads += 1
        time.sleep(self.seconds)
        if self.down:
            raise OperationalError("connection refused")
        return self.answer, self.expires


def look_up_together(cache: KeyCache, secrets: list[str]) -> list[Caller | None]:
    """One thread a secret, released at once, as the gateway's worker threads admit concurrent requests."""
    start = threading.Barrier(len(secrets))
    answers: list[Caller | None] = [None] * len(secrets)

    def look_up(index: int) -> None:
        start.wait()
        answers[index] = cache.lookup(secrets[index])

    threads = [threading.Thread(target=look_up, args=(index,)) for index in range(len(secrets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return answers


def test_requests_that_find_a_key_stale_together_wait_for_one_load(monkeypatch):
    database = SlowDatabase(0.05)
    monkeypatch.setattr(auth, "_load_api_key", database)
    cache = KeyCache()

    assert look_up_together(cache, ["hi-busy-key"] * 8) == [CALLER] * 8
    assert database.loads == 1
    assert cache.fresh("hi-busy-key") == (True, CALLER)


def test_different_keys_load_side_by_side(monkeypatch):
    database = SlowDatabase(0.3)
    monkeypatch.setattr(auth, "_load_api_key", database)
    cache = KeyCache()

    started = time.monotonic()
    answers = look_up_together(cache, [f"hi-key-{index}" for index in range(4)])
    assert answers == [CALLER] * 4 and database.loads == 4
    assert time.monotonic() - started < 4 * 0.3  # not one after another


def test_a_key_revoked_during_its_load_is_refused_within_the_cache_time(monkeypatch):
    database = SlowDatabase(0.2)
    monkeypatch.setattr(auth, "_load_api_key", database)
    cache = KeyCache()

    revoked_at = time.monotonic()  # the load below began before the revocation, and read the key valid
    assert cache.lookup("hi-key") == CALLER
    database.answer = None
    while time.monotonic() < revoked_at + KEY_CACHE_SECONDS + 0.05:
        time.sleep(0.02)
    assert cache.lookup("hi-key") is None
    assert database.loads == 2


def cached_with_loads_ahead(
    monkeypatch, *, lifetime: float, ahead: float, load_seconds: float = 0.0
) -> tuple[SlowDatabase, KeyCache]:
    """A cache whose answers live `lifetime`, loaded again `ahead` of their end; "hi-key" is in it."""
    database = SlowDatabase(load_seconds)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", lifetime)
    monkeypatch.setattr(auth, "REFRESH_AHEAD_SECONDS", ahead)
    cache = KeyCache()
    assert cache.lookup("hi-key") == CALLER
    return database, cache


def test_a_key_in_use_is_loaded_again_before_it_expires_and_its_requests_never_wait(monkeypatch):
    database, cache = cached_with_loads_ahead(monkeypatch, lifetime=0.6, ahead=0.3, load_seconds=0.01)
    deadline = time.monotonic() + 1.5  # two and a half lifetimes of an answer
    while time.monotonic() < deadline:
        assert cache.fresh("hi-key") == (True, CALLER)  # from memory: never stale, never a wait
        time.sleep(0.005)
    wait_for_loads()
    assert 4 <= database.loads <= 8  # about one a 0.3 s, in the background: not one a request


def test_a_key_revoked_while_it_is_loaded_ahead_is_refused_within_the_cache_time(monkeypatch):
    database, cache = cached_with_loads_ahead(monkeypatch, lifetime=0.3, ahead=0.15, load_seconds=0.01)
    time.sleep(0.2)  # into the window: the next request has it loaded again in the background
    assert cache.fresh("hi-key") == (True, CALLER)
    revoked_at = time.monotonic()
    database.answer = None
    answers: list[tuple[float, Caller | None]] = []
    while time.monotonic() < revoked_at + 0.8:
        known, caller = cache.fresh("hi-key")
        answers.append((time.monotonic(), caller if known else cache.lookup("hi-key")))
        time.sleep(0.005)
    assert all(caller is None for at, caller in answers if at > revoked_at + 0.3)
    assert answers[-1][1] is None and any(caller == CALLER for _, caller in answers)


def test_through_an_outage_a_load_ahead_fails_quietly_and_the_answer_serves_until_it_expires(monkeypatch):
    database, cache = cached_with_loads_ahead(monkeypatch, lifetime=0.3, ahead=0.15)
    database.down = True
    time.sleep(0.2)
    assert cache.fresh("hi-key") == (True, CALLER)
    wait_for_loads()
    assert database.loads == 2  # tried once ahead, failed
    assert cache.fresh("hi-key") == (True, CALLER)  # and no more tries until the answer expires
    wait_for_loads()
    assert database.loads == 2


def timed_look_ups(cache: KeyCache, secrets: list[str]) -> tuple[list[Caller | None], list[float]]:
    """`look_up_together`, with how long each look-up took (in the order they ended)."""
    took: list[float] = []
    lookup = cache.lookup

    def timed_lookup(secret: str) -> Caller | None:
        started = time.monotonic()
        try:
            return lookup(secret)
        finally:
            took.append(time.monotonic() - started)

    cache.lookup = timed_lookup  # type: ignore[method-assign]
    return look_up_together(cache, secrets), took


def bearer(secret: str) -> dict[bytes, bytes]:
    return {b"authorization": f"Bearer {secret}".encode()}


def test_a_key_cached_fresh_is_answered_from_memory_and_one_not_cached_is_left_to_the_database(monkeypatch):
    """The in-loop admission's question (gateway/admission.py): what `authenticate` would answer, without the
    database; None sends the request to a worker thread, where `authenticate` may load the key."""
    database = SlowDatabase(0)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(auth, "key_cache", KeyCache())

    assert auth.authenticate_from_memory(bearer("hi-key")) is None  # not cached: not loaded here
    assert database.loads == 0
    assert auth.authenticate(bearer("hi-key")) == CALLER  # loaded, once
    assert auth.authenticate_from_memory(bearer("hi-key")) == CALLER
    assert database.loads == 1
    assert auth.authenticate_from_memory({}) is None  # no key: `authenticate` refuses it
    assert auth.authenticate_from_memory(bearer(f"{PLAYGROUND_KEY_PREFIX}abc")) is None  # always redeemed


@pytest.mark.parametrize(
    ("cached", "code"),
    [(None, ErrorCode.INVALID_API_KEY), (replace(CALLER, workspace_locked=True), ErrorCode.WORKSPACE_LOCKED)],
)
def test_a_refusal_cached_fresh_is_refused_from_memory_as_authenticate_refuses_it(monkeypatch, cached, code):
    database = SlowDatabase(0)
    database.answer = cached
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(auth, "key_cache", KeyCache())

    with pytest.raises(ApiError) as in_thread:
        auth.authenticate(bearer("hi-key"))
    with pytest.raises(ApiError) as in_memory:
        auth.authenticate_from_memory(bearer("hi-key"))
    assert in_thread.value.code == in_memory.value.code == code
    assert database.loads == 1


# --- PostgreSQL down --------------------------------------------------------------------------------------


def test_through_an_outage_a_known_key_keeps_its_last_answer_and_loads_are_tried_now_and_then(monkeypatch):
    database = SlowDatabase(0)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)  # the cache's own pace, not the process's
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.05)
    monkeypatch.setattr(auth, "OUTAGE_RETRY_SECONDS", 0.2)
    cache = KeyCache()
    assert cache.lookup("hi-key") == CALLER
    database.down = True
    time.sleep(0.06)

    assert cache.lookup("hi-key") == CALLER  # the load failed: its last answer
    assert cache.fresh("hi-key") == (True, CALLER)  # from memory until the next try
    assert database.loads == 2
    time.sleep(0.21)
    database.down = False
    database.answer = None  # revoked: the first load that works says so
    assert cache.lookup("hi-key") is None and database.loads == 3


def test_through_an_outage_an_unknown_key_fails_and_a_known_one_stops_at_its_expiry(monkeypatch):
    database = SlowDatabase(0)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)  # the cache's own pace, not the process's
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.05)
    monkeypatch.setattr(auth, "OUTAGE_RETRY_SECONDS", 0.05)
    cache = KeyCache()
    database.expires = time.time() + 0.3
    assert cache.lookup("hi-key") == CALLER
    database.down = True

    with pytest.raises(OperationalError):
        cache.lookup("hi-other-key")  # nothing to go on
    time.sleep(0.06)
    assert cache.lookup("hi-key") == CALLER
    time.sleep(0.3)
    assert cache.lookup("hi-key") is None  # expired meanwhile, PostgreSQL or not


def test_through_an_outage_requests_of_a_known_key_do_not_wait_for_one_slow_load(monkeypatch):
    """A load that fails slowly (the pool's timeout) holds up only the request that tried it."""
    database = SlowDatabase(0)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)  # the cache's own pace, not the process's
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.01)
    monkeypatch.setattr(auth, "OUTAGE_RETRY_SECONDS", 0.01)
    cache = KeyCache()
    assert cache.lookup("hi-key") == CALLER
    database.down = True
    time.sleep(0.02)
    assert cache.lookup("hi-key") == CALLER  # the outage is known now
    time.sleep(0.02)
    database.seconds = 1.0

    answers, took = timed_look_ups(cache, ["hi-key"] * 6)
    assert answers == [CALLER] * 6
    assert database.loads == 3  # one of them tried; the others did not wait for it
    assert sorted(took)[-1] >= 1.0 and sorted(took)[-2] < 0.5


def test_once_any_load_found_postgresql_down_a_stale_key_is_not_even_tried(monkeypatch):
    """The catalog's load failed a moment ago (gateway/outage.py): a key's load would wait out the pool's
    timeout the same way, so its last answer stands without one."""
    database = SlowDatabase(0)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.01)
    cache = KeyCache()
    assert cache.lookup("hi-key") == CALLER
    time.sleep(0.02)
    with pytest.raises(OperationalError), outage.postgres_attempt():
        raise OperationalError("connection refused")  # the catalog's reload

    assert cache.lookup("hi-key") == CALLER
    assert database.loads == 1


def a_known_key_gone_stale(monkeypatch) -> tuple[SlowDatabase, KeyCache]:
    """A cache that loaded "hi-key" once and holds its answer past KEY_CACHE_SECONDS (0.01 s); another
    request's load is waited for KEY_LOAD_WAIT_SECONDS (0.2 s)."""
    database = SlowDatabase(0)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.01)
    monkeypatch.setattr(auth, "KEY_LOAD_WAIT_SECONDS", 0.2)
    cache = KeyCache()
    assert cache.lookup("hi-key") == CALLER
    time.sleep(0.02)
    return database, cache


def test_when_postgresql_starts_failing_a_known_key_waits_for_anothers_load_only_so_long(monkeypatch):
    """The first load after PostgreSQL went away waits out the pool's timeout; the other requests of that
    key wait KEY_LOAD_WAIT_SECONDS for it at most, then go on with its last answer."""
    database, cache = a_known_key_gone_stale(monkeypatch)
    database.down, database.seconds = True, 1.0
    answers, took = timed_look_ups(cache, ["hi-key"] * 4)
    assert answers == [CALLER] * 4
    assert database.loads == 2
    assert sorted(took)[-1] >= 1.0 and 0.2 <= sorted(took)[-2] < 0.6


def took_to_look_up(cache: KeyCache, secret: str) -> float:
    started = time.monotonic()
    assert cache.lookup(secret) == CALLER
    return time.monotonic() - started


def test_a_load_that_does_not_come_back_holds_a_known_keys_requests_up_once(monkeypatch):
    """PostgreSQL not answering (a partition) fails no load: it keeps one in flight. The first request to
    wait for it waits KEY_LOAD_WAIT_SECONDS; from then on it is an outage, and the last answer serves from
    memory, without a wait each."""
    database, cache = a_known_key_gone_stale(monkeypatch)
    database.seconds = 1.5
    loader = threading.Thread(target=cache.lookup, args=("hi-key",))
    loader.start()
    time.sleep(0.05)  # its load is under way

    assert 0.2 <= took_to_look_up(cache, "hi-key") < 0.5
    assert took_to_look_up(cache, "hi-key") < 0.05
    assert took_to_look_up(cache, "hi-key") < 0.05
    assert database.loads == 2  # the first look-up's and the one held, nobody else's
    loader.join()


def test_requests_of_an_unknown_key_wait_for_its_load_only_so_long(monkeypatch):
    """An unknown key has no answer to go on, but a load that does not come back must not hold every request
    of it (and a worker thread each) for as long as it hangs: they fail after outage.ANSWER_SECONDS."""
    database = SlowDatabase(1.0)
    monkeypatch.setattr(auth, "_load_api_key", database)
    monkeypatch.setattr(outage, "ANSWER_SECONDS", 0.2)
    cache = KeyCache()
    loader = threading.Thread(target=cache.lookup, args=("hi-new",))
    loader.start()
    time.sleep(0.05)

    started = time.monotonic()
    with pytest.raises(outage.PostgresDown):
        cache.lookup("hi-new")
    assert 0.2 <= time.monotonic() - started < 0.5
    loader.join()
    assert cache.lookup("hi-new") == CALLER  # the load came back: its answer stands
