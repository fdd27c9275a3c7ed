"""GET /metrics (gateway/metrics_scrape.py): requests through the real gateway against fake upstreams move
each counter by exactly what they did; the token guards the endpoint. What is recorded beside the request
path, summed over processes and read from Redis at scrape time is in test_metrics_exposition.py.

Counters live as long as the test process, so each test compares a scrape before with one after."""

import time

import httpx
import pytest
from django.conf import settings as django_settings
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from console.services.keys import api_key_create
from tests.config.test_settings import PRODUCTION, check
from tests.factories import make_user, make_workspace
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.rate_windows import a_fresh_minute

TOKEN = "metrics-" + "s3cr3t" * 6
KEY = "test-key"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
GAUGES = ("hyperinfer_meter_", "hyperinfer_journal_")


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return parsed(response.text)


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every counter and histogram sample that changed, and by how much (gauges move on their own)."""
    keys = {key for key in before.keys() | after.keys() if not key[0].startswith(GAUGES)}
    return {
        key: after.get(key, 0.0) - before.get(key, 0.0) for key in keys if after.get(key) != before.get(key)
    }


def scrape_until(url: str, name: str, labels: dict[str, str], expected: float) -> Samples:
    """The request settles just after its last byte: scrape until its counter has moved (it must)."""
    deadline = time.monotonic() + 10
    while (samples := scrape(url)) and value(samples, name, **labels) != expected:
        assert time.monotonic() < deadline, f"{name}{labels} never reached {expected}"
        time.sleep(0.02)
    return samples


def chat(url: str, key: str, model: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    return httpx.post(
        f"{url}/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=20
    )


# --- The endpoint -------------------------------------------------------------------------------------


def test_without_a_metrics_token_there_is_no_metrics_endpoint(gateway_url, settings):
    settings.METRICS_TOKEN = ""
    response = httpx.get(f"{gateway_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}", "Bearer hi-an-api-key"],
)
def test_a_missing_or_wrong_token_is_refused(gateway_url, metrics_token, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{gateway_url}/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and error["request_id"] == response.headers["x-request-id"]
    assert "hyperinfer_" not in response.text


def test_the_right_token_gets_the_prometheus_text(gateway_url, metrics_token):
    response = httpx.get(f"{gateway_url}/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert response.headers["cache-control"] == "no-store"
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert "hyperinfer_meter_queue_depth" in families or django_settings.GATEWAY_METER == "sql"


def test_production_refuses_a_short_metrics_token():
    result = check(**PRODUCTION, METRICS_TOKEN="short")
    assert result.returncode != 0 and "METRICS_TOKEN" in result.stderr
    assert check(**PRODUCTION, METRICS_TOKEN=TOKEN).returncode == 0


# --- Requests through the gateway ---------------------------------------------------------------------


@pytest.mark.parametrize("meter", ["redis", "sql"])
def test_a_success_counts_one_request_its_tokens_and_exactly_its_cost(
    gateway_url, funded_key, metrics_token, monkeypatch, settings, meter
):
    if meter == "redis" and not django_settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL=redis://… (CI does)")
    settings.GATEWAY_METER = meter
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    model, provider = f"test/metrics-{meter}", f"test-metrics-{meter}-0"  # series of the test's own
    with openai_fake("cerebras", Scenario(text="counted"), api_key=KEY) as fake:
        serve_model_from(model, [("cerebras", fake.base_url)])
        before = scrape(gateway_url)
        response = chat(gateway_url, key, model)
        assert response.status_code == 200
        generation = settled_generation(response.headers["x-request-id"])
        labels = {"format": "chat_completions", "model": model, "provider": provider, "status": "completed"}
        after = scrape_until(gateway_url, "hyperinfer_requests_total", labels, 1)

    assert generation.cost_micro_usd == 12 * 1 + 7 * 2  # the fake's usage at $1/M and $2/M
    changed = moved(before, after)
    assert changed[("hyperinfer_requests_total", frozenset(labels.items()))] == 1
    assert value(after, "hyperinfer_tokens_billed_total", model=model, kind="prompt") == 12
    assert value(after, "hyperinfer_tokens_billed_total", model=model, kind="completion") == 7
    assert value(after, "hyperinfer_billed_micro_usd_total", model=model) == generation.cost_micro_usd
    ttft = value(after, "hyperinfer_time_to_first_token_seconds_count", provider=provider)
    assert ttft == 1 and value(after, "hyperinfer_time_to_first_token_seconds_sum", provider=provider) >= 0
    # The time upstream (its request sent -> its last byte) and the rest, the gateway's own time: one each.
    assert value(after, "hyperinfer_upstream_seconds_count", provider=provider) == 1
    overhead = ("hyperinfer_gateway_overhead_seconds_count", frozenset({("format", "chat_completions")}))
    assert changed[overhead] == 1
    assert not [key for key in changed if key[0] == "hyperinfer_errors_total"]
    # Billed once: nothing more arrives later (the Redis meter's writer, the journal's keeper).
    time.sleep(0.3)
    assert moved(after, scrape(gateway_url)) == {}


def test_an_upstream_error_counts_a_failed_request_and_its_code_and_bills_nothing(
    gateway_url, funded_key, metrics_token, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    model, provider = "test/metrics-down", "test-metrics-down-0"
    with openai_fake("cerebras", Scenario(failure="server_error"), api_key=KEY) as fake:
        serve_model_from(model, [("cerebras", fake.base_url)])
        before = scrape(gateway_url)
        response = chat(gateway_url, key, model)
        assert response.status_code == 502
        labels = {"format": "chat_completions", "model": model, "provider": "", "status": "failed"}
        after = scrape_until(gateway_url, "hyperinfer_requests_total", labels, 1)

    code = {"format": "chat_completions", "model": model, "provider": "", "code": "provider_unavailable"}
    assert value(after, "hyperinfer_errors_total", **code) == 1
    assert value(after, "hyperinfer_billed_micro_usd_total", model=model) == 0
    assert value(after, "hyperinfer_tokens_billed_total", model=model, kind="prompt") == 0
    assert {name for name, _ in moved(before, after)} >= {
        "hyperinfer_requests_total",
        "hyperinfer_errors_total",
    }
    assert settled_generation(response.headers["x-request-id"]).provider == ""  # as the record says
    assert provider not in str(moved(before, after))


def rate_limited_key() -> str:
    workspace = make_workspace(owner=make_user(), credits_micro_usd=5_000_000)
    return api_key_create(workspace=workspace, name="rpm", created_by=None, rate_limit_rpm=1).secret


REFUSALS = {
    # case: (key, the request's changes, status, code, the model label: "" before the model is resolved)
    "bad_key": ("wrong", {}, 401, "invalid_api_key", ""),
    "schema": ("funded", {"temperature": 7}, 400, "invalid_request", ""),
    "no_credits": (
        "broke",
        {"model": "hyperinfer/sandbox-pro"},
        402,
        "insufficient_credits",
        "hyperinfer/sandbox-pro",
    ),
    "rate_limit": ("limited", {}, 429, "rate_limit_exceeded", "hyperinfer/sandbox"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_counts_a_refused_request_and_its_taxonomy_code(
    gateway_url, funded_key, metrics_token, case
):
    which, changes, status, code, model = REFUSALS[case]
    keys = {
        "wrong": lambda: "hi-not-a-key",
        "funded": lambda: funded_key[1],
        "broke": lambda: api_key_create(workspace=make_workspace(), name="broke", created_by=None).secret,
        "limited": rate_limited_key,
    }
    key = keys[which]()
    if which == "limited":  # the minute's one request, settled and counted before the refused one
        a_fresh_minute()
        completed = {"format": "chat_completions", "model": model, "provider": "mock"}
        completed["status"] = "completed"
        counted = value(scrape(gateway_url), "hyperinfer_requests_total", **completed)
        assert chat(gateway_url, key, model).status_code == 200
        scrape_until(gateway_url, "hyperinfer_requests_total", completed, counted + 1)
    before = scrape(gateway_url)
    response = chat(gateway_url, key, changes.pop("model", "hyperinfer/sandbox"), **changes)
    after = scrape(gateway_url)  # a refusal is counted before its answer is sent

    assert response.status_code == status and response.json()["error"]["code"] == code
    request = {"format": "chat_completions", "model": model, "provider": "", "status": "refused"}
    error = {"format": "chat_completions", "model": model, "provider": "", "code": code}
    assert moved(before, after) == {
        ("hyperinfer_requests_total", frozenset(request.items())): 1,
        ("hyperinfer_errors_total", frozenset(error.items())): 1,
    }


def test_an_endpoint_beyond_the_formats_counts_its_refusals(gateway_url, metrics_token):
    before = scrape(gateway_url)
    response = httpx.post(
        f"{gateway_url}/api/v1/embeddings",
        json={"model": "hyperinfer/sandbox-embed", "input": "x"},
        headers={"Authorization": "Bearer hi-not-a-key"},
    )
    after = scrape(gateway_url)
    assert response.status_code == 401
    labels = {"format": "embeddings", "model": "", "provider": "", "code": "invalid_api_key"}
    assert (
        value(after, "hyperinfer_errors_total", **labels) - value(before, "hyperinfer_errors_total", **labels)
        == 1
    )


def test_an_embeddings_request_counts_one_request_its_prompt_tokens_and_exactly_its_cost(
    gateway_url, funded_key, metrics_token, sql_meter
):
    _, key = funded_key
    model, provider = "test/metrics-embed", "test-metrics-embed-0"
    with openai_fake("llamacpp", Scenario(), api_key=KEY) as fake:
        serve_model_from(model, [("llamacpp", fake.base_url)], kind="embedding", dimensions=4)
        before = scrape(gateway_url)
        response = httpx.post(
            f"{gateway_url}/api/v1/embeddings",
            json={"model": model, "input": ["one two three", "four"]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=20,
        )
        assert response.status_code == 200, response.text
        generation = settled_generation(response.headers["x-request-id"])
        labels = {"format": "embeddings", "model": model, "provider": provider, "status": "completed"}
        after = scrape_until(gateway_url, "hyperinfer_requests_total", labels, 1)
    changed = moved(before, after)
    assert changed[("hyperinfer_requests_total", frozenset(labels.items()))] == 1
    assert generation.tokens_prompt == 4 and generation.cost_micro_usd == 4  # the fake's count at $1/M
    assert value(after, "hyperinfer_tokens_billed_total", model=model, kind="prompt") == 4
    assert value(after, "hyperinfer_billed_micro_usd_total", model=model) == generation.cost_micro_usd
    assert not [key for key in changed if key[0] == "hyperinfer_errors_total"]
