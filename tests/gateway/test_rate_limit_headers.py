"""Every 429 says when to come back: the key's own limit with Retry-After and X-RateLimit-*, on either
meter's path; a provider's rate limit with the provider's Retry-After."""

import httpx
import pytest

from core.errors import ApiError
from gateway.ratelimit import check_rate_limit, rate_limited
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from


def test_the_limit_names_the_end_of_its_window():
    error = rate_limited(30, now=1_800_000_015.5)
    assert error.status == 429
    assert dict(error.headers) == {
        "retry-after": "45",
        "x-ratelimit-limit": "30",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "1800000060",
    }


@pytest.mark.django_db
def test_the_sql_meters_counter_refuses_with_the_headers():
    refusals = []
    for _ in range(7):  # two windows' worth at most, should the minute turn meanwhile
        try:
            check_rate_limit(api_key_id=987_654, rpm=3)
        except ApiError as exc:
            refusals.append(exc)
    assert refusals and dict(refusals[0].headers)["x-ratelimit-limit"] == "3"


def test_a_providers_rate_limit_passes_its_retry_after_on(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    _, key = funded_key
    with openai_fake("fireworks", Scenario(failure="rate_limited", retry_after=12)) as fake:
        serve_model_from("test/busy", [("fireworks", fake.base_url)])
        answer = httpx.post(
            f"{gateway_url}/api/v1/chat/completions",
            json={"model": "test/busy", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
    assert answer.status_code == 429 and answer.json()["error"]["code"] == "provider_rate_limit"
    assert answer.headers["retry-after"] == "12"
