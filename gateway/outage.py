"""Whether PostgreSQL answers, as this process last found out, for the loads the hot path makes from worker
threads: a key, the catalog, the journal's confirmations, readiness.

With PostgreSQL down, each of those waited out the pool's timeout (`DB_POOL_TIMEOUT`, 10 s) in a worker
thread, and a few of them filled the thread pool that every request not served from memory needs, and held
up the journal's keeper (its fsync included). After a connection fails, they fail at once for
PROBE_SECONDS, then one of them tries again; the callers go on with what they had (auth.KeyCache,
catalog_cache.CatalogCache) or try at their next pass (metering.keeper).

A PostgreSQL that stops answering without failing (a network partition, a server stuck on its disk) never
raises: a load just does not come back. So a load in flight for ANSWER_SECONDS counts as a failure too:
until it comes back, the others fail at once (it is the probe; no second one is started to hang beside it).
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.db import OperationalError

from gateway.http import in_thread, nobody_waits_for

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
# A hot-path load answers in milliseconds; one still out after this is PostgreSQL not answering. The journal's
# keeper waits as long for its confirmations (keeper.CONFIRM_SECONDS).
ANSWER_SECONDS = 2.0
# The longest a request waits for PostgreSQL work in a worker thread (`in_thread_within`): room for the key
# cache's own waits for another request's load (auth.KEY_LOAD_WAIT_SECONDS, ANSWER_SECONDS) and a load.
REQUEST_WAIT_SECONDS = 2 * ANSWER_SECONDS

P = ParamSpec("P")
T = TypeVar("T")


class PostgresDown(OperationalError):
    """Not tried: PostgreSQL did not answer a moment ago, or another thread is finding out whether it does."""


class _State:
    def __init__(self) -> None:
        self.down_until = 0.0  # monotonic: until then, fail at once
        self.down = False  # the last attempt failed: attempts go one at a time until one succeeds
        self.probing = threading.Lock()
        self.in_flight: dict[object, float] = {}  # attempts under way: when each began (monotonic)
        self.in_flight_lock = threading.Lock()


_state = _State()


def _went_down(state: _State, now: float, why: str, *, failed: bool) -> None:
    """`failed`: called while handling the error the load raised (logged with it)."""
    if not state.down:  # once an outage: the loads that meet it go on from memory, and say nothing
        logger.warning("PostgreSQL %s; the gateway serves from memory", why, exc_info=failed)
    state.down, state.down_until = True, now + PROBE_SECONDS


def _one_is_stuck(state: _State, now: float) -> bool:
    with state.in_flight_lock:
        for began in state.in_flight.values():
            if now - began > ANSWER_SECONDS:
                return True
    return False


@contextmanager
def postgres_attempt() -> Iterator[None]:
    """Around a load from PostgreSQL: raises PostgresDown instead of trying while it is known to be down."""
    state = _state
    now = time.monotonic()
    if now < state.down_until:
        raise PostgresDown("PostgreSQL did not answer a moment ago")
    if state.in_flight and _one_is_stuck(state, now):
        _went_down(state, now, f"has not answered a load for {ANSWER_SECONDS:g} s", failed=False)
        raise PostgresDown("PostgreSQL has not answered a load under way")
    probing = state.down
    if probing and not state.probing.acquire(blocking=False):
        raise PostgresDown("PostgreSQL is being asked whether it answers again")
    token = object()
    with state.in_flight_lock:
        state.in_flight[token] = now
    try:
        yield
    except PostgresDown:
        raise
    except OperationalError:
        _went_down(state, time.monotonic(), "does not answer", failed=True)
        raise
    else:
        if state.down:
            logger.warning("PostgreSQL answers again")
        state.down = False
        state.down_until = 0.0  # a load that came back late ends what it started
    finally:
        with state.in_flight_lock:
            state.in_flight.pop(token, None)  # forget() may have cleared it
        if probing:
            state.probing.release()


def attempted(load: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`load(*args, **kwargs)` inside `postgres_attempt()`, for a worker thread: `in_thread(attempted, …)`."""
    with postgres_attempt():
        return load(*args, **kwargs)


def forget() -> None:
    """As if PostgreSQL had answered (tests; a process that knows better)."""
    _state.down, _state.down_until = False, 0.0
    with _state.in_flight_lock:
        _state.in_flight.clear()


async def in_thread_within(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`in_thread(function, …)` for a request's PostgreSQL work (its key, the catalog, a balance to mirror):
    given up as PostgresDown once it has taken REQUEST_WAIT_SECONDS while PostgreSQL is not answering (known
    down, or a load out past ANSWER_SECONDS). A PostgreSQL that does not answer never fails the work, and
    the request would wait on its thread for as long as that lasts, holding a graceful stop up with it. Work
    that is only slow (a new process's first request, a busy machine) goes on. The thread itself stays until
    its connection gives up (libpq's timeouts, config/settings.py)."""
    work = asyncio.create_task(in_thread(function, *args, **kwargs))
    work.add_done_callback(nobody_waits_for)  # once the request gave up on it, or left
    while True:
        done, _ = await asyncio.wait({work}, timeout=REQUEST_WAIT_SECONDS)
        if done:
            return work.result()
        if _not_answering(_state, time.monotonic()):
            raise PostgresDown(f"PostgreSQL has not answered within {REQUEST_WAIT_SECONDS:g} s")


def _not_answering(state: _State, now: float) -> bool:
    return state.down or now < state.down_until or _one_is_stuck(state, now)
