"""Every 429 says when to come back: the key's own limit with Retry-After and X-RateLimit-*, on either
meter's path; a provider's rate limit with the provider's Retry-After."""

import time

import httpx
import pytest
from django.conf import settings as django_settings
from django.core.cache import cache

from billing import mirror
from console.services.keys import api_key_create
from core.errors import ApiError
from gateway.ratelimit import check_rate_limit, rate_limited
from tests.factories import make_user, make_workspace
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


def forget_counters(workspace_id, api_key_id: int, window: int) -> None:
    """A key id the database hands out again may still have a counter from an earlier test."""
    cache.delete(f"hi:rl:{api_key_id}:{window}")
    if django_settings.REDIS_URL:
        mirror.sync_client().delete(mirror.rate_counter(workspace_id, api_key_id, window))


@pytest.mark.parametrize("meter", ["redis", "sql"])
@pytest.mark.django_db(transaction=True)
def test_free_requests_count_against_the_keys_limit_in_the_same_window(gateway_url, settings, meter):
    """Token counting and the tokenizer are free, not unlimited: they share the key's requests per minute
    with the billed requests, on either meter. Three free ones use a limit of 3; the chat is then refused."""
    if meter == "redis" and not settings.REDIS_URL:
        pytest.skip("the Redis meter needs REDIS_URL")
    settings.GATEWAY_METER = meter
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    chat = {"model": "hyperinfer/sandbox", "messages": [{"role": "user", "content": "hi"}]}
    sequence = [
        ("/api/v1/tokenize/count", {"model": "hyperinfer/sandbox", "input": "hello"}),
        ("/api/v1/messages/count_tokens", chat),
        (
            "/api/v1/detokenize",
            {"model": "hyperinfer/sandbox", "tokens": [1]},
        ),  # refused for the model: counted
        ("/api/v1/chat/completions", chat),
        ("/api/v1/tokenize/count", {"model": "hyperinfer/sandbox", "input": "hello"}),
    ]
    for _ in range(2):  # again with a fresh key, should the minute turn during the sequence
        issued = api_key_create(workspace=workspace, name="rpm", created_by=owner, rate_limit_rpm=3)
        key, window = issued.secret, int(time.time() // 60)
        forget_counters(workspace.pk, issued.record.pk, window)
        answers = [
            httpx.post(f"{gateway_url}{path}", json=body, headers={"Authorization": f"Bearer {key}"})
            for path, body in sequence
        ]
        if int(time.time() // 60) == window:
            break
    assert [answer.status_code for answer in answers] == [200, 200, 400, 429, 429]
    for refused in answers[3:]:
        assert refused.headers["x-ratelimit-limit"] == "3" and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
