"""Whether PostgreSQL answers, as this process last found out, for the loads the hot path makes from worker
threads: a key, the catalog, the journal's confirmations.

With PostgreSQL down, each of those waited out the pool's timeout (`DB_POOL_TIMEOUT`, 10 s) in a worker
thread, and a few of them filled the thread pool that every request not served from memory needs, and held
up the journal's keeper (its fsync included). After a connection fails, they fail at once for
PROBE_SECONDS, then one of them tries again; the callers go on with what they had (auth.KeyCache,
catalog_cache.CatalogCache) or try at their next pass (metering.keeper).
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.db import OperationalError

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0

P = ParamSpec("P")
T = TypeVar("T")


class PostgresDown(OperationalError):
    """Not tried: PostgreSQL did not answer a moment ago, or another thread is finding out whether it does."""


class _State:
    def __init__(self) -> None:
        self.down_until = 0.0  # monotonic: until then, fail at once
        self.down = False  # the last attempt failed: attempts go one at a time until one succeeds
        self.probing = threading.Lock()


_state = _State()


@contextmanager
def postgres_attempt() -> Iterator[None]:
    """Around a load from PostgreSQL: raises PostgresDown instead of trying while it is known to be down."""
    state = _state
    if time.monotonic() < state.down_until:
        raise PostgresDown("PostgreSQL did not answer a moment ago")
    probing = state.down
    if probing and not state.probing.acquire(blocking=False):
        raise PostgresDown("PostgreSQL is being asked whether it answers again")
    try:
        yield
    except PostgresDown:
        raise
    except OperationalError:
        if not state.down:  # once an outage: the loads that meet it go on from memory, and say nothing
            logger.warning("PostgreSQL does not answer; the gateway serves from memory", exc_info=True)
        state.down, state.down_until = True, time.monotonic() + PROBE_SECONDS
        raise
    else:
        if state.down:
            logger.warning("PostgreSQL answers again")
        state.down = False
    finally:
        if probing:
            state.probing.release()


def attempted(load: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`load(*args, **kwargs)` inside `postgres_attempt()`, for a worker thread: `in_thread(attempted, …)`."""
    with postgres_attempt():
        return load(*args, **kwargs)


def forget() -> None:
    """As if PostgreSQL had answered (tests; a process that knows better)."""
    _state.down, _state.down_until = False, 0.0
