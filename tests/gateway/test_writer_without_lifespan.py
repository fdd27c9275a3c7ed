"""Under a server that sends no ASGI lifespan (Daphne's `runserver`), the Redis meter's writer starts with the
first request: records reach PostgreSQL within moments, with no Celery beat running."""

import time

import httpx
import pytest

from gateway.auth import key_cache
from gateway.catalog_cache import catalog_cache
from gateway.models import Generation
from tests.gateway.conftest import ServerThread

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_records_reach_postgresql_without_a_lifespan_or_a_beat(shipped_catalog, funded_key, settings):
    settings.GATEWAY_METER = "redis"
    settings.EMBEDDED_BEAT = False
    catalog_cache.invalidate()
    key_cache._entries.clear()
    _, secret = funded_key
    body = {"model": "hyperinfer/sandbox", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    with ServerThread(lifespan="off") as url:
        response = httpx.post(
            f"{url}/api/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        )
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        deadline = time.monotonic() + 10
        while not Generation.objects.filter(request_id=request_id).exists():
            assert time.monotonic() < deadline, "the record never reached PostgreSQL"
            time.sleep(0.05)
    catalog_cache.invalidate()
