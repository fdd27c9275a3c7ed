"""Loads the hot path's caches make ahead of need (the API keys of gateway/auth.py, the catalog of
gateway/catalog_cache.py): an answer in use that is about to go stale is loaded again in a background thread
of the process, while requests go on using it from memory. Without this, every second each busy key's
requests found it stale together and went to worker threads to wait for one load of it."""

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from gateway.http import with_fresh_connection

logger = logging.getLogger(__name__)

_under_way: set[Hashable] = set()  # loads queued or running, by name
_pool: ThreadPoolExecutor | None = None
_pool_made = threading.Lock()


def load_ahead(name: Hashable, load: Callable[[], None]) -> None:
    """`load()` in the background, unless a load of that `name` is already queued or running. Called from the
    event loop: returns at once."""
    if name in _under_way:
        return
    _under_way.add(name)
    try:
        _loader().submit(_run, name, load)
    except RuntimeError:  # the interpreter is shutting down: the next request loads it itself
        _under_way.discard(name)


def _loader() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_made:
            if _pool is None:
                # One thread: these loads are rare (a key a second, the catalog every few), and in order.
                _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-ahead")
    return _pool


def _run(name: Hashable, load: Callable[[], None]) -> None:
    try:
        with_fresh_connection(load)
    except Exception:  # the caches handle PostgreSQL being down themselves; anything else is a bug
        logger.exception("loading %r ahead of need failed", name)
    finally:
        _under_way.discard(name)


def wait_for_loads() -> None:
    """Until the loads queued so far are done (tests)."""
    if _pool is not None:
        _pool.submit(lambda: None).result()
