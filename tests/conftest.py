"""Shared fixtures. Tests that need a real PostgreSQL or Redis are marked `postgres` / `redis` and are
skipped, with the reason printed, only when DATABASE_URL / REDIS_URL are unset (CI always sets them)."""

import os

import pytest
from django.db import connection


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
