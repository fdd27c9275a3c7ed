"""The catalog's live figures: computed from generation records (gateway/selectors.py) by the periodic task
gateway.tasks.refresh_model_figures into the catalog's snapshot, which the catalog's API and pages read.
After requests through the gateway, and on records laid out in time (what counts, what does not, the
medians)."""

import datetime

import httpx
import pytest
from django.utils import timezone

from catalog.models import ModelFigures
from catalog.selectors import model_figures_get
from catalog.selectors import weekly_token_volumes as snapshot_weekly_volumes
from catalog.services import LiveFigures
from gateway.models import Generation, GenerationStatus
from gateway.rollups import roll_up_usage
from gateway.selectors import daily_token_volume, model_performance, weekly_token_volumes
from gateway.tasks import refresh_model_figures
from tests.factories import make_workspace
from tests.gateway.conftest import settled_generation

MODEL = "hyperinfer/sandbox-pro"
pytestmark = pytest.mark.usefixtures("one_utc_day")  # the tests read "today"


def test_requests_through_the_gateway_show_in_the_live_figures(gateway_url, funded_key):
    roll_up_usage()
    refresh_model_figures()
    before = snapshot_weekly_volumes().get(MODEL, 0)
    [(_, today_before)] = daily_token_volume(model=MODEL, days=1)
    headers = {"Authorization": f"Bearer {funded_key[1]}"}
    bodies = {
        "/api/v1/chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        "/api/v1/responses": {"model": MODEL, "input": "Hello there", "stream": True},
        "/api/v1/messages": {
            "model": MODEL,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "Hey"}],
        },
    }
    request_ids = []
    with httpx.Client(timeout=10) as client:
        for path, body in bodies.items():
            response = client.post(gateway_url + path, headers=headers, json=body)
            assert response.status_code == 200, response.text
            request_ids.append(response.headers["x-request-id"])
    generations = [settled_generation(request_id) for request_id in request_ids]
    tokens = sum(g.tokens_prompt + g.tokens_completion for g in generations)

    roll_up_usage()  # as beat does every minute; the volumes read the rollups
    assert weekly_token_volumes()[MODEL] == before + tokens
    assert daily_token_volume(model=MODEL, days=2)[-1] == (timezone.now().date(), today_before + tokens)
    performance = model_performance(model=MODEL)
    assert performance.requests == 3 and performance.success_rate == 1.0
    assert performance.median_ttft_ms is not None and performance.median_ttft_ms >= 0
    assert performance.median_output_tokens_per_second > 0

    # The catalog shows the snapshot: unchanged until the task runs, as beat runs it every minute.
    assert snapshot_weekly_volumes().get(MODEL, 0) == before
    refresh_model_figures()
    assert snapshot_weekly_volumes()[MODEL] == before + tokens

    # What a visitor sees: the catalog API and the model page.
    with httpx.Client(timeout=10) as client:
        listed = client.get(f"{gateway_url}/api/v1/models/{MODEL}").json()["data"]
        page = client.get(f"{gateway_url}/models/{MODEL}/").text
    assert listed["weekly_token_volume"] == before + tokens
    assert "of 3 requests" in page and "100%" in page


@pytest.fixture
def records(db, one_utc_day):
    workspace = make_workspace()
    now = timezone.now()

    def record(model: str, *, ago: datetime.timedelta, status=GenerationStatus.COMPLETED, **fields):
        defaults = {"tokens_prompt": 10, "tokens_completion": 5, "latency_ms": 1100, "ttft_ms": 100}
        return Generation.objects.create(
            request_id=f"r{Generation.objects.count()}",
            workspace=workspace,
            ingress_format="chat_completions",
            model=model,
            status=status,
            created_at=now - ago,
            **{**defaults, **fields},
        )

    record.now = now
    return record


def test_the_weekly_volume_counts_completed_requests_of_the_last_seven_days(records):
    records("a/m", ago=datetime.timedelta(hours=1))
    records("a/m", ago=datetime.timedelta(days=6, hours=23), tokens_prompt=100, tokens_completion=0)
    records("a/m", ago=datetime.timedelta(days=7, hours=1), tokens_prompt=1000)  # too old
    records("a/m", ago=datetime.timedelta(hours=2), status=GenerationStatus.FAILED, tokens_prompt=500)
    records("b/m", ago=datetime.timedelta(hours=3), tokens_prompt=1, tokens_completion=1)
    roll_up_usage(since=timezone.now() - datetime.timedelta(days=8))
    assert weekly_token_volumes() == {"a/m": 115, "b/m": 2}


def test_the_daily_volume_has_every_day_oldest_first(records):
    records("a/m", ago=datetime.timedelta(days=2))
    records("a/m", ago=datetime.timedelta(days=2), tokens_completion=0)
    roll_up_usage(since=timezone.now() - datetime.timedelta(days=8))
    days = daily_token_volume(model="a/m", days=4)
    today = timezone.now().date()
    assert [day for day, _ in days] == [today - datetime.timedelta(days=n) for n in (3, 2, 1, 0)]
    assert [tokens for _, tokens in days] == [0, 25, 0, 0]


def test_performance_takes_medians_over_the_last_day_and_counts_failures(records):
    records("a/m", ago=datetime.timedelta(minutes=1), ttft_ms=100, latency_ms=1100, tokens_completion=11)
    records("a/m", ago=datetime.timedelta(minutes=2), ttft_ms=300, latency_ms=2300, tokens_completion=41)
    records("a/m", ago=datetime.timedelta(minutes=3), ttft_ms=200, latency_ms=700, tokens_completion=51)
    records("a/m", ago=datetime.timedelta(minutes=4), status=GenerationStatus.FAILED, ttft_ms=None)
    records("a/m", ago=datetime.timedelta(days=2), ttft_ms=9000)  # outside the day
    performance = model_performance(model="a/m")
    assert performance.requests == 4 and performance.success_rate == 0.75
    assert performance.median_ttft_ms == 200
    # tokens after the first over the time after it: 10/1.0 s, 40/2.0 s, 50/0.5 s
    assert performance.median_output_tokens_per_second == 20.0
    assert model_performance(model="z/none").as_json() == {
        "requests": 0,
        "success_rate": None,
        "median_ttft_ms": None,
        "median_output_tokens_per_second": None,
    }


# --- The catalog's snapshot -----------------------------------------------------------------------------


def earlier_today(records, ago: datetime.timedelta) -> datetime.timedelta:
    """`ago`, or less when that would fall yesterday: a test run just after midnight UTC still sees today.
    Measured from the records' own `now`, which a later clock reading would put yesterday by a hair."""
    return min(ago, records.now - records.now.replace(hour=0, minute=0, second=0, microsecond=0))


def test_the_task_refreshes_the_snapshot_with_new_generations(shipped_catalog, records):
    slug = "meta-llama/llama-3.1-8b"
    records(
        slug, ago=earlier_today(records, datetime.timedelta(hours=1)), tokens_prompt=100, tokens_completion=20
    )
    roll_up_usage()
    assert refresh_model_figures() == 8  # every active model of the shipped catalog
    first = model_figures_get(slug=slug)
    assert first.weekly_tokens == 120 and first.requests == 1 and first.success_rate == 1.0
    assert first.daily_tokens[-1] == (timezone.now().date(), 120)
    computed_at = ModelFigures.objects.get(model__slug=slug).computed_at

    records(
        slug,
        ago=earlier_today(records, datetime.timedelta(minutes=1)),
        tokens_prompt=1000,
        tokens_completion=0,
    )
    failed_at = earlier_today(records, datetime.timedelta(minutes=2))
    records(slug, ago=failed_at, status=GenerationStatus.FAILED, ttft_ms=None)
    assert model_figures_get(slug=slug) == first  # not until the tasks run again
    roll_up_usage()
    refresh_model_figures()
    second = model_figures_get(slug=slug)
    assert second.weekly_tokens == 1120 and second.requests == 3 and second.success_rate == 0.6667
    assert second.daily_tokens[-1] == (timezone.now().date(), 1120)
    assert snapshot_weekly_volumes()[slug] == 1120
    assert ModelFigures.objects.get(model__slug=slug).computed_at > computed_at
    assert ModelFigures.objects.count() == 8  # one row per model, replaced in place


def test_a_model_without_traffic_has_no_figures(shipped_catalog, records):
    records("meta-llama/llama-3.1-8b", ago=datetime.timedelta(hours=1))
    records("not/in-the-catalog", ago=datetime.timedelta(hours=1))  # skipped: no such catalog model
    quiet = "hyperinfer/sandbox"
    assert model_figures_get(slug=quiet).weekly_tokens == 0  # before any snapshot
    roll_up_usage()
    refresh_model_figures()
    figures = model_figures_get(slug=quiet)
    assert figures == LiveFigures(daily_tokens=figures.daily_tokens)  # zero volume, no performance
    assert len(figures.daily_tokens) == 30 and {tokens for _, tokens in figures.daily_tokens} == {0}
    assert snapshot_weekly_volumes()[quiet] == 0
    assert "not/in-the-catalog" not in snapshot_weekly_volumes()


def test_an_old_snapshot_still_charts_the_days_up_to_today(shipped_catalog, records):
    slug = "meta-llama/llama-3.1-8b"
    records(slug, ago=datetime.timedelta(hours=1))
    roll_up_usage()
    refresh_model_figures()
    stored = ModelFigures.objects.get(model__slug=slug)
    yesterday = timezone.now().date() - datetime.timedelta(days=1)
    # As if the snapshot were taken a day ago: its last day is yesterday, and it held 15 tokens then.
    stored.daily_tokens = [{"date": yesterday.isoformat(), "tokens": 15}]
    stored.save()
    daily = model_figures_get(slug=slug, days=3).daily_tokens
    assert daily == tuple(
        (yesterday + datetime.timedelta(days=n), tokens) for n, tokens in ((-1, 0), (0, 15), (1, 0))
    )
