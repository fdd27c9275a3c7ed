"""gateway/metrics.py and metrics_scrape.py beside the request path: what observe records; processes
writing into one directory are summed by one scrape; the meter's backlog is read from a real Redis at scrape
time. The endpoint and the requests through the gateway are in test_metrics.py, whose sample helpers this
imports.

Counters live as long as the test process, so each test compares an exposition before with one after."""

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from billing import mirror
from core.errors import ErrorCode
from gateway import metrics, provider_slots
from gateway.canonical import Usage
from gateway.metering import Outcome
from gateway.metering import journal as journal_module
from gateway.metering.journal import Journal
from gateway.metrics_scrape import exposition
from gateway.route_health import FAILURES_TO_COOL, RouteHealth, route_health
from gateway.upstreams.base import ProviderInfo, RouteInfo, UpstreamError
from tests.gateway.test_metrics import Samples, moved, parsed, value

ROOT = Path(__file__).resolve().parents[2]


# --- What observe records, beside the request path ----------------------------------------------------


def test_upstream_time_and_gateway_overhead_come_from_the_outcome():
    provider = f"p-{uuid.uuid4().hex[:8]}"
    outcome = Outcome(
        status="completed", usage=Usage(3, 4), provider=provider, latency_ms=250, upstream_ms=240
    )
    before = parsed(exposition().decode())
    metrics.observe("responses", "m/x", outcome, 99)
    metrics.observe("responses", "m/x", Outcome(status="completed", usage=Usage(1, 1), provider=provider), 1)
    after = parsed(exposition().decode())

    upstream = {"provider": provider}
    assert value(after, "hyperinfer_upstream_seconds_count", **upstream) == 1  # the second had no upstream_ms
    assert value(after, "hyperinfer_upstream_seconds_sum", **upstream) == pytest.approx(0.24)
    assert value(after, "hyperinfer_upstream_seconds_bucket", le="0.25", **upstream) == 1
    assert value(after, "hyperinfer_upstream_seconds_bucket", le="0.1", **upstream) == 0
    overhead = ("hyperinfer_gateway_overhead_seconds_sum", frozenset({("format", "responses")}))
    assert moved(before, after)[overhead] == pytest.approx(0.01)


def test_a_settlement_no_meter_took_is_counted_deferred_and_not_billed():
    model = f"m/{uuid.uuid4().hex[:8]}"
    before = parsed(exposition().decode())
    metrics.observe("completions", model, Outcome(status="completed", usage=Usage(5, 5), provider="p"), None)
    after = parsed(exposition().decode())
    assert (
        value(after, "hyperinfer_settlements_deferred_total", format="completions")
        - value(before, "hyperinfer_settlements_deferred_total", format="completions")
        == 1
    )
    assert value(after, "hyperinfer_billed_micro_usd_total", model=model) == 0
    assert value(after, "hyperinfer_tokens_billed_total", model=model, kind="prompt") == 0


def test_the_journal_is_counted_by_state(tmp_path, monkeypatch, settings):
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 4
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 1)
    journal = Journal(tmp_path)
    for request_id in ("spilled", "open", "unsettled", "unconfirmed-1", "unconfirmed-2"):
        journal.opened(request_id=request_id, header=b"{}", prompt_estimate=1)
    outcome = Outcome(status="completed", usage=Usage(1, 1))
    for request_id in ("spilled", "unsettled", "unconfirmed-1", "unconfirmed-2"):
        journal.settling(request_id=request_id, outcome=outcome)
    for request_id in ("spilled", "unconfirmed-1", "unconfirmed-2"):
        journal.taken(request_id=request_id, durable=False)
    assert asyncio.run(journal.spill()) == 1  # the oldest finished entry, to disk

    async def observed_then_scraped() -> Samples:
        metrics.observe("responses", "m/journal", outcome, 0, journal)
        await asyncio.sleep(0)  # the loop's counting task takes its first count
        return parsed(exposition().decode())

    samples = asyncio.run(observed_then_scraped())
    assert {
        state: value(samples, "hyperinfer_journal_entries", state=state) for state in metrics.JOURNAL_STATES
    } == {
        "open": 1,
        "unsettled": 1,
        "unconfirmed": 2,
        "spilled": 1,
    }
    # The loop is gone, and its counts with it.
    samples = parsed(exposition().decode())
    assert value(samples, "hyperinfer_journal_entries", state="unconfirmed") == 0
    journal.close()


# --- Several processes, one scrape --------------------------------------------------------------------

RECORDER = """
import sys, django
django.setup()
from gateway import metrics, provider_slots
metrics.refused(sys.argv[1], "", "internal_error")
metrics.JOURNAL_ENTRIES.labels("open").set(5)
print("recorded", flush=True)
if sys.argv[2] == "stay":
    sys.stdin.read()  # alive until the test closes stdin
"""


def recorder(fmt: str, stay: bool) -> subprocess.Popen[str]:
    """Another process writing into this one's directory, as the workers of one deployment share it."""
    directory = django_settings.PROMETHEUS_MULTIPROC_DIR
    environment = {key: val for key, val in os.environ.items() if key != "HYPERINFER_METRICS_DIR_IS_DEFAULT"}
    environment |= {"PROMETHEUS_MULTIPROC_DIR": directory, "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.Popen(
        [sys.executable, "-c", RECORDER, fmt, "stay" if stay else "exit"],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def scrape_until(name: str, labels: dict[str, str], expected: float) -> Samples:
    deadline = time.monotonic() + 3 * metrics.PUBLISH_SECONDS
    while (samples := parsed(exposition().decode())) and value(samples, name, **labels) != expected:
        assert time.monotonic() < deadline, f"{name}{labels} never reached {expected}"
        time.sleep(0.05)
    return samples


def test_a_scrape_sums_every_process_and_forgets_a_dead_ones_live_gauges():
    fmt = f"multiprocess-{uuid.uuid4().hex[:8]}"
    labels = {"format": fmt, "model": "", "provider": "", "status": "refused"}
    other = recorder(fmt, stay=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "recorded"
        open_before = value(parsed(exposition().decode()), "hyperinfer_journal_entries", state="open")
        metrics.refused(fmt, "", "internal_error")  # this process, the same series
        started = time.monotonic()
        # The other process's count arrives with its publisher's next pass, while it lives.
        scrape_until("hyperinfer_requests_total", labels, 2)
        assert time.monotonic() - started < 2 * metrics.PUBLISH_SECONDS
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(20)
    after = parsed(exposition().decode())

    assert value(after, "hyperinfer_requests_total", **labels) == 2  # a dead process's counts stay
    assert open_before - value(after, "hyperinfer_journal_entries", state="open") == 5  # its gauge goes
    assert not list(Path(django_settings.PROMETHEUS_MULTIPROC_DIR).glob(f"gauge_live*_{other.pid}.db"))


def test_a_process_that_exits_before_its_publisher_wakes_publishes_on_its_way_out():
    fmt = f"exiting-{uuid.uuid4().hex[:8]}"
    other = recorder(fmt, stay=False)
    assert other.stdout is not None and other.stdout.readline().strip() == "recorded"
    assert other.wait(20) == 0
    samples = parsed(exposition().decode())
    labels = {"format": fmt, "model": "", "provider": "", "status": "refused"}
    assert value(samples, "hyperinfer_requests_total", **labels) == 1
    errors = {"format": fmt, "model": "", "provider": "", "code": "internal_error"}
    assert value(samples, "hyperinfer_errors_total", **errors) == 1


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
    baseline = parsed(exposition().decode())
    assert value(baseline, "hyperinfer_meter_redis_up") == 1
    try:
        client.rpush(mirror.queue(shard), *[f'{{"test": {n}}}' for n in range(7)])
        client.zadd(mirror.inflights(shard), {token: time.time() - 10_000})
        client.rpush(mirror.dead(shard), "{}")
        samples = parsed(exposition().decode())
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
    samples = parsed(exposition().decode())
    assert value(samples, "hyperinfer_meter_redis_up") == 0
    assert ("hyperinfer_meter_queue_depth", frozenset()) not in samples


def test_the_sql_meter_has_no_backlog_to_report(settings):
    settings.GATEWAY_METER = "sql"
    names = {name for name, _ in parsed(exposition().decode())}
    assert not {name for name in names if name.startswith("hyperinfer_meter_")}


def port_nobody_listens_on() -> int:
    """A loopback port that was just free (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_route_that_begins_to_cool_is_counted_once_for_its_cooldown():
    provider = f"p-{uuid.uuid4().hex[:8]}"
    route = RouteInfo(ProviderInfo(provider, "openai_compatible", "http://x", "k", 5.0), "big")
    health = RouteHealth()
    before = parsed(exposition().decode())
    for _ in range(FAILURES_TO_COOL + 2):  # the failures past the third extend the cooldown it is in
        health.failed(route, UpstreamError(ErrorCode.PROVIDER_TIMEOUT, "slow"))
    after = parsed(exposition().decode())
    assert value(after, "hyperinfer_route_cooldowns_total", provider=provider, upstream_model="big") == 1
    assert value(before, "hyperinfer_route_cooldowns_total", provider=provider, upstream_model="big") == 0


def test_a_route_cooling_in_this_process_is_sampled_until_it_answers_again():
    provider = f"p-{uuid.uuid4().hex[:8]}"
    route = RouteInfo(ProviderInfo(provider, "openai_compatible", "http://x", "k", 5.0), "big")
    for _ in range(FAILURES_TO_COOL):
        route_health.failed(route, UpstreamError(ErrorCode.PROVIDER_TIMEOUT, "slow"))
    cooling = parsed(exposition().decode())
    route_health.answered(route)
    answering = parsed(exposition().decode())
    assert value(cooling, "hyperinfer_route_cooling", provider=provider, upstream_model="big") == 1
    assert value(answering, "hyperinfer_route_cooling", provider=provider, upstream_model="big") == 0


LEARNER = """
import sys, django
django.setup()
from gateway import metrics
from gateway.route_health import route_health
metrics.publish_from_now_on()  # as a gateway worker's startup does
route = (sys.argv[1], "m")
route_health.learn(1_000, {route: 31_000})  # another process cooled it (Redis's clock: 30 s more)
print("cooling", flush=True)
sys.stdin.readline()
route_health.learn(1_000, {route: -1_000})  # another process saw it answer again
print("answering", flush=True)
sys.stdin.read()
"""


def test_a_process_that_serves_no_request_publishes_what_it_learned_of_a_route():
    """A worker publishes from its start: what it learns from other processes (no request of its own to
    start its publisher) is not left as the last scrape that went through it found it."""
    provider = f"learned-{uuid.uuid4().hex[:8]}"
    labels = {"provider": provider, "upstream_model": "m"}
    environment = {key: val for key, val in os.environ.items() if key != "HYPERINFER_METRICS_DIR_IS_DEFAULT"}
    environment |= {
        "PROMETHEUS_MULTIPROC_DIR": django_settings.PROMETHEUS_MULTIPROC_DIR,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    learner = subprocess.Popen(
        [sys.executable, "-c", LEARNER, provider], env=environment, cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert learner.stdin is not None and learner.stdout is not None
    try:
        assert learner.stdout.readline().strip() == "cooling"
        scrape_until("hyperinfer_route_cooling", labels, 1)
        learner.stdin.write("\n")
        learner.stdin.flush()
        assert learner.stdout.readline().strip() == "answering"
        scrape_until("hyperinfer_route_cooling", labels, 0)
    finally:
        learner.stdin.close()
        learner.wait(20)


def test_a_providers_slots_are_sampled_and_its_refusals_counted():
    slug = f"p-{uuid.uuid4().hex[:8]}"
    provider = ProviderInfo(slug, "openai_compatible", "http://x", "k", 5.0, max_concurrency=1)
    before = parsed(exposition().decode())

    async def fill() -> None:
        slots = provider_slots.slots_for(provider, 1)
        await slots.take()
        with pytest.raises(provider_slots.ProviderFull):
            await slots.take()

    asyncio.run(fill())
    after = parsed(exposition().decode())
    assert value(after, "hyperinfer_provider_full_total", provider=slug, why="queue_full") == 1
    assert value(before, "hyperinfer_provider_full_total", provider=slug, why="queue_full") == 0
    assert value(after, "hyperinfer_provider_requests", provider=slug, state="under_way") == 1
    assert value(after, "hyperinfer_provider_requests", provider=slug, state="waiting") == 0
