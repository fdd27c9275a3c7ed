"""Shared fixtures. Tests that need a real PostgreSQL or Redis are marked `postgres` / `redis` and are
skipped, with the reason printed, only when DATABASE_URL / REDIS_URL are unset (CI always sets them)."""

import os
import uuid

import pytest
from django.db import connection

pytest_plugins = [
    "tests.celery_worker",  # the `worker` fixture: a real Celery worker on Redis
    "tests.stripe_double",  # localstripe as a real server (`stripe_double`)
    "tests.gateway.redis_cluster",  # a real Redis Cluster (`redis_cluster`), and `meter_redis` over both
]


def pytest_collection_modifyitems(config, items):
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    no_postgres = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://… (CI does)")
    no_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://… (CI does)")
    for item in items:
        if "postgres" in item.keywords and not database_url.startswith(("postgres://", "postgresql://")):
            item.add_marker(no_postgres)
        if "redis" in item.keywords and not redis_url.startswith("redis://"):
            item.add_marker(no_redis)


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


SPEC_FILE = "004_58b223d4197c71d1.txt"
CEREBRAS_SPEC_FILE = "000_746281c3df5eb076.txt"


def _load_spec(name: str) -> dict:
    """An OpenAPI JSON spec from ../shared/specs or HYPERINFER_SPECS_DIR; missing: fails in CI, else skips."""
    import json
    from pathlib import Path

    default = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
    path = Path(os.environ.get("HYPERINFER_SPECS_DIR", default)) / name
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the spec file {path} is missing")
        pytest.skip(f"spec file not found at {path}: set HYPERINFER_SPECS_DIR")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def hyperinfer_spec() -> dict:
    """The product's public contract (OpenAPI JSON)."""
    return _load_spec(SPEC_FILE)


@pytest.fixture(scope="session")
def cerebras_spec() -> dict:
    """The Cerebras Inference API (OpenAPI JSON): its public models listing's OpenRouter and Hugging Face
    shapes are the ones our catalog offers with `?format=`."""
    return _load_spec(CEREBRAS_SPEC_FILE)


@pytest.fixture(scope="session")
def spec_validator(hyperinfer_spec):
    """validate(instance, schema) with the spec's components resolvable through $ref."""
    from jsonschema import Draft202012Validator

    def validate(instance, schema: dict) -> None:
        Draft202012Validator({**schema, "components": hyperinfer_spec["components"]}).validate(instance)

    return validate


@pytest.fixture
def shipped_catalog(db):
    """The shipped providers.yaml, loaded into the test database."""
    from django.conf import settings

    from catalog.loader import catalog_load

    catalog_load(settings.CATALOG_PATH)


# The longest a test that reads the calendar day takes, from its records laid out to its page drawn.
CALENDAR_TEST_SECONDS = 120


@pytest.fixture
def one_utc_day() -> None:
    """For a test that reads the calendar day (records laid out by "days ago", a daily key limit): it starts
    only when it can end on the same UTC day, waiting out the last minutes before midnight if it must.
    (A test that ran across midnight saw its records on yesterday's bar and its "today" on the next.)"""
    import datetime
    import time

    now = datetime.datetime.now(datetime.UTC)
    midnight = datetime.datetime.combine(
        now.date() + datetime.timedelta(days=1), datetime.time(), datetime.UTC
    )
    if (midnight - now).total_seconds() < CALENDAR_TEST_SECONDS:
        time.sleep((midnight - now).total_seconds() + 1)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Password hashing is deliberately slow; the tests check behaviour, not the hash's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def own_throttle_counts(settings, request):
    """Each test counts its own log-in and sign-up attempts (the cache may be a Redis shared by the run)."""
    settings.THROTTLE_NAMESPACE = f"test-{uuid.uuid4().hex}"


@pytest.fixture(autouse=True)
def own_settlement_journal(settings, tmp_path):
    """Each test's gateway journals into a folder of its own, so no test adopts another's requests."""
    settings.GATEWAY_JOURNAL_DIR = tmp_path / "journal"


@pytest.fixture(autouse=True)
def routes_healthy():
    """Each test's routes start with no failures counted (gateway/route_health.py: a process's memory)."""
    from gateway.route_health import route_health

    route_health.forget()
    yield
    route_health.forget()


@pytest.fixture(autouse=True)
def no_provider_slots_taken():
    """Each test's providers start with no request under way (gateway/provider_slots.py: a process's memory,
    whose waiters belong to the event loop of the test that made them)."""
    from gateway import provider_slots

    provider_slots.forget()
    yield
    provider_slots.forget()


@pytest.fixture(autouse=True)
def postgres_answering():
    """A test that made PostgreSQL fail (or stood in for it failing) leaves no outage to the next one."""
    from gateway import outage

    outage.forget()
    yield
    outage.forget()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Every test that touches the database ends with the ledger audit (design §4): whatever it did with
    money, every micro-dollar is accounted for. It runs as part of the test, while the test's servers and
    settings still stand. `ledger_unbalanced`: the test breaks the ledger on purpose; `billing_layer`: it
    settles through the billing services alone, so there are no generation records to compare debits with."""
    result = yield
    uses_database = item.get_closest_marker("django_db") or "_django_db_helper" in item.fixturenames
    if uses_database and not item.get_closest_marker("ledger_unbalanced"):
        from gateway.audit import ledger_audit

        findings = ledger_audit(with_generations=not item.get_closest_marker("billing_layer"))
        assert not findings, "the ledger audit failed after this test:\n" + "\n".join(map(str, findings))
    return result


@pytest.fixture(scope="session", autouse=True)
def end_worker_thread_connections(django_db_setup, django_db_blocker):
    """The gateway runs ORM code in worker threads, whose connections outlive the tests; end them so the
    test database can be dropped."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session", autouse=True)
def fresh_credit_mirror():
    """The Redis meter's mirror names keys by database ids, which a new test database reuses: start empty,
    and leave nothing behind (the mirror's keys have no expiry: they are the balances of live workspaces)."""
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url.startswith("redis://"):
        yield
        return
    import redis

    from billing.mirror import PREFIX

    client = redis.Redis.from_url(redis_url)

    def clear() -> None:
        for name in client.scan_iter(match=PREFIX + "*", count=1000):
            client.delete(name)

    clear()
    yield
    clear()
    client.close()
