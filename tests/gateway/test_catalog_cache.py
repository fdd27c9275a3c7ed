"""gateway/catalog_cache.py: the catalog the hot path reads, reloaded every REFRESH_SECONDS; while PostgreSQL
does not answer, the last snapshot serves and a load is tried every OUTAGE_RETRY_SECONDS."""

import threading
import time

import pytest
from django.db import OperationalError

from gateway import catalog_cache as module
from gateway import outage
from gateway.catalog_cache import CatalogCache
from gateway.load_ahead import wait_for_loads


class Database:
    """Stands in for the two loads: counts them; `down` fails them, `seconds` slows them."""

    def __init__(self) -> None:
        self.loads, self.seconds, self.down = 0, 0.0, False
        self.slugs = ["m/one"]

    def load(self) -> dict[str, object]:
        self.loads += 1
        time.sleep(self.seconds)
        if self.down:
            raise OperationalError("connection refused")
        return {slug: object() for slug in self.slugs}  # a new snapshot each load


@pytest.fixture
def database(monkeypatch):
    database = Database()
    monkeypatch.setattr(module, "_load", database.load)
    monkeypatch.setattr(module, "tool_prices", dict)
    monkeypatch.setattr(module, "REFRESH_SECONDS", 0.05)
    monkeypatch.setattr(module, "OUTAGE_RETRY_SECONDS", 0.2)
    monkeypatch.setattr(module, "REFRESH_AHEAD_SECONDS", 0.0)  # no background loads but where a test says
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)  # the cache's own pace, not the process's
    return database


def test_the_catalog_in_use_is_loaded_again_before_it_goes_stale_and_requests_never_find_it_stale(
    database, monkeypatch
):
    monkeypatch.setattr(module, "REFRESH_SECONDS", 0.4)
    monkeypatch.setattr(module, "REFRESH_AHEAD_SECONDS", 0.2)
    cache = CatalogCache()
    cache.get("m/one")
    deadline = time.monotonic() + 1.5  # nearly four snapshots' lifetimes
    while time.monotonic() < deadline:
        assert cache.is_fresh()  # a request would be answered from memory, never sent to wait for a load
        time.sleep(0.005)
    wait_for_loads()
    assert 4 <= database.loads <= 10  # about one a 0.2 s, in the background: not one a request


def test_through_an_outage_the_last_snapshot_serves_and_a_load_is_tried_now_and_then(database):
    cache = CatalogCache()
    model = cache.get("m/one")
    assert model is not None
    database.down = True
    time.sleep(0.06)

    assert cache.get("m/one") is model and cache.is_fresh()  # from memory again, until the next try
    assert database.loads == 2
    assert cache.get("m/one") is model and database.loads == 2
    time.sleep(0.21)
    database.down = False
    database.slugs = []  # the model was retired meanwhile: the first load that works says so
    assert cache.get("m/one") is None and database.loads == 3


def test_with_no_snapshot_yet_an_outage_fails_the_request(database):
    database.down = True

    with pytest.raises(OperationalError):
        CatalogCache().get("m/one")


def test_a_reload_under_way_holds_up_no_other_request(database):
    cache = CatalogCache()
    model = cache.get("m/one")
    time.sleep(0.06)
    database.seconds = 0.5
    took: dict[str, float] = {}

    def get(name: str) -> None:
        started = time.monotonic()
        assert cache.get("m/one") is not None
        took[name] = time.monotonic() - started

    loader = threading.Thread(target=get, args=("loader",))
    loader.start()
    time.sleep(0.1)  # the load is under way
    get("other")
    loader.join()

    assert took["other"] < 0.1 <= 0.4 <= took["loader"]
    assert database.loads == 2 and cache.get("m/one") is not model  # the new snapshot, once loaded


def test_after_invalidate_every_get_waits_for_a_load_begun_after_it(database):
    """A load that read the catalog before it changed does not count as fresh, and no request goes on with
    the snapshot from before (a model just added was answered 404 by the requests beside the loader's)."""
    cache = CatalogCache()
    cache.get("m/one")
    database.seconds = 0.3
    database.slugs = ["m/one"]  # what the slow load below reads, before the catalog changes
    stale_load = threading.Thread(target=cache.get, args=("m/one",))
    time.sleep(0.06)
    stale_load.start()
    time.sleep(0.1)  # it has read
    database.slugs, database.seconds = ["m/one", "m/two"], 0.0
    cache.invalidate()
    assert cache.get("m/two") is not None  # waited for the load under way, then loaded again
    stale_load.join()
    assert cache.get("m/two") is not None
