"""GET /metrics (gateway/metrics.py): requests through the real gateway against fake upstreams move each
counter by exactly what they did; the token guards the endpoint; processes writing into one directory are
summed by one scrape; the meter's backlog is read from a real Redis at scrape time.

Counters live as long as the test process, so each test compares a scrape before with one after."""

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from billing import mirror
from console.services.keys import api_key_create
from gateway import metrics
from gateway.canonical import Usage
from gateway.metering import Outcome
from gateway.metering.journal import Journal
from tests.config.test_settings import PRODUCTION, check
from tests.factories import make_user, make_workspace
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation

TOKEN = "metrics-" + "s3cr3t" * 6
KEY = "test-key"
ROOT = Path(__file__).resolve().parents[2]
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


# --- What observe records, beside the request path ----------------------------------------------------


def test_upstream_time_and_gateway_overhead_come_from_the_outcome():
    provider = f"p-{uuid.uuid4().hex[:8]}"
    outcome = Outcome(
        status="completed", usage=Usage(3, 4), provider=provider, latency_ms=250, upstream_ms=240
    )
    before = parsed(metrics.exposition().decode())
    metrics.observe("responses", "m/x", outcome, 99)
    metrics.observe("responses", "m/x", Outcome(status="completed", usage=Usage(1, 1), provider=provider), 1)
    after = parsed(metrics.exposition().decode())

    upstream = {"provider": provider}
    assert value(after, "hyperinfer_upstream_seconds_count", **upstream) == 1  # the second had no upstream_ms
    assert value(after, "hyperinfer_upstream_seconds_sum", **upstream) == pytest.approx(0.24)
    assert value(after, "hyperinfer_upstream_seconds_bucket", le="0.25", **upstream) == 1
    assert value(after, "hyperinfer_upstream_seconds_bucket", le="0.1", **upstream) == 0
    overhead = ("hyperinfer_gateway_overhead_seconds_sum", frozenset({("format", "responses")}))
    assert moved(before, after)[overhead] == pytest.approx(0.01)


def test_a_settlement_no_meter_took_is_counted_deferred_and_not_billed():
    model = f"m/{uuid.uuid4().hex[:8]}"
    before = parsed(metrics.exposition().decode())
    metrics.observe("completions", model, Outcome(status="completed", usage=Usage(5, 5), provider="p"), None)
    after = parsed(metrics.exposition().decode())
    assert (
        value(after, "hyperinfer_settlements_deferred_total", format="completions")
        - value(before, "hyperinfer_settlements_deferred_total", format="completions")
        == 1
    )
    assert value(after, "hyperinfer_billed_micro_usd_total", model=model) == 0
    assert value(after, "hyperinfer_tokens_billed_total", model=model, kind="prompt") == 0


def test_the_journal_is_counted_by_state(tmp_path):
    journal = Journal(tmp_path)
    for request_id in ("open", "unsettled", "unconfirmed-1", "unconfirmed-2"):
        journal.opened(request_id=request_id, header={}, prompt_estimate=1)
    outcome = Outcome(status="completed", usage=Usage(1, 1))
    for request_id in ("unsettled", "unconfirmed-1", "unconfirmed-2"):
        journal.settling(request_id=request_id, outcome=outcome)
    for request_id in ("unconfirmed-1", "unconfirmed-2"):
        journal.taken(request_id=request_id, durable=False)

    async def observed_then_scraped() -> Samples:
        metrics.observe("responses", "m/journal", outcome, 0, journal)
        await asyncio.sleep(0)  # the loop's counting task takes its first count
        return parsed(metrics.exposition().decode())

    samples = asyncio.run(observed_then_scraped())
    assert {
        state: value(samples, "hyperinfer_journal_entries", state=state) for state in metrics.JOURNAL_STATES
    } == {
        "open": 1,
        "unsettled": 1,
        "unconfirmed": 2,
    }
    # The loop is gone, and its counts with it.
    samples = parsed(metrics.exposition().decode())
    assert value(samples, "hyperinfer_journal_entries", state="unconfirmed") == 0
    journal.close()


# --- Several processes, one scrape --------------------------------------------------------------------

RECORDER = """
import sys, django
django.setup()
from gateway import metrics
metrics.refused(sys.argv[1], "", "internal_error")
metrics.JOURNAL_ENTRIES.labels("open").set(5)
print("recorded", flush=True)
sys.stdin.read()  # alive until the test closes stdin
"""


def test_a_scrape_sums_every_process_and_forgets_a_dead_ones_live_gauges():
    fmt = f"multiprocess-{uuid.uuid4().hex[:8]}"
    directory = django_settings.PROMETHEUS_MULTIPROC_DIR
    # An operator's PROMETHEUS_MULTIPROC_DIR, as the workers of one deployment share it.
    environment = {key: val for key, val in os.environ.items() if key != "HYPERINFER_METRICS_DIR_IS_DEFAULT"}
    environment |= {"PROMETHEUS_MULTIPROC_DIR": directory, "DJANGO_SETTINGS_MODULE": "config.settings"}
    other = subprocess.Popen(
        [sys.executable, "-c", RECORDER, fmt],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "recorded"
        open_before = value(parsed(metrics.exposition().decode()), "hyperinfer_journal_entries", state="open")
        metrics.refused(fmt, "", "internal_error")  # this process, the same series
        both = parsed(metrics.exposition().decode())
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(20)
    after = parsed(metrics.exposition().decode())

    labels = {"format": fmt, "model": "", "provider": "", "status": "refused"}
    assert value(both, "hyperinfer_requests_total", **labels) == 2
    assert value(after, "hyperinfer_requests_total", **labels) == 2  # a dead process's counts stay
    assert open_before - value(after, "hyperinfer_journal_entries", state="open") == 5  # its gauge goes
    assert not list(Path(directory).glob(f"gauge_live*_{other.pid}.db"))


def test_the_default_directory_is_one_per_process_group_and_gone_groups_are_removed(monkeypatch):
    from config.env import metrics_dir

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/an/inherited/default")
    monkeypatch.setenv("HYPERINFER_METRICS_DIR_IS_DEFAULT", "1")
    gone = subprocess.Popen(["true"])
    gone.wait()
    root = Path(django_settings.PROMETHEUS_MULTIPROC_DIR).parent
    (root / str(gone.pid)).mkdir(exist_ok=True)

    directory = metrics_dir()

    # pytest is no multiprocessing child: a group of its own, the directory its settings chose.
    assert directory == str(root / str(os.getpid())) == django_settings.PROMETHEUS_MULTIPROC_DIR
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == directory
    assert not (root / str(gone.pid)).exists()
    monkeypatch.delenv("HYPERINFER_METRICS_DIR_IS_DEFAULT")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(root / "operator-given"))
    assert metrics_dir() == str(root / "operator-given")  # an operator's directory, as given
    (root / "operator-given").rmdir()


# --- The meter's backlog, read from Redis at scrape time ----------------------------------------------


@pytest.mark.redis
def test_the_meter_gauges_read_a_queue_of_n_records_and_the_oldest_batch(settings):
    settings.GATEWAY_METER = "redis"
    client = mirror.sync_client()
    shard = 0
    token = f"metrics-test-{uuid.uuid4().hex}"
    baseline = parsed(metrics.exposition().decode())
    assert value(baseline, "hyperinfer_meter_redis_up") == 1
    try:
        client.rpush(mirror.queue(shard), *[f'{{"test": {n}}}' for n in range(7)])
        client.zadd(mirror.inflights(shard), {token: time.time() - 10_000})
        client.rpush(mirror.dead(shard), "{}")
        samples = parsed(metrics.exposition().decode())
    finally:
        client.ltrim(mirror.queue(shard), 0, -8)  # the 7 pushed last
        client.zrem(mirror.inflights(shard), token)
        client.rpop(mirror.dead(shard))
    assert (
        value(samples, "hyperinfer_meter_queue_depth") == value(baseline, "hyperinfer_meter_queue_depth") + 7
    )
    assert value(samples, "hyperinfer_meter_batches_in_flight") == (
        value(baseline, "hyperinfer_meter_batches_in_flight") + 1
    )
    assert 10_000 <= value(samples, "hyperinfer_meter_writer_lag_seconds") < 10_060
    assert (
        value(samples, "hyperinfer_meter_dead_letters")
        == value(baseline, "hyperinfer_meter_dead_letters") + 1
    )


def test_a_meter_redis_that_is_down_is_reported_and_the_scrape_still_answers(settings, monkeypatch):
    import redis

    settings.GATEWAY_METER = "redis"
    down = redis.Redis(port=port_nobody_listens_on(), socket_connect_timeout=1)
    monkeypatch.setattr(mirror, "sync_client", lambda: down)
    samples = parsed(metrics.exposition().decode())
    assert value(samples, "hyperinfer_meter_redis_up") == 0
    assert ("hyperinfer_meter_queue_depth", frozenset()) not in samples


def test_the_sql_meter_has_no_backlog_to_report(settings):
    settings.GATEWAY_METER = "sql"
    names = {name for name, _ in parsed(metrics.exposition().decode())}
    assert not {name for name in names if name.startswith("hyperinfer_meter_")}


def port_nobody_listens_on() -> int:
    """A loopback port that was just free (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
