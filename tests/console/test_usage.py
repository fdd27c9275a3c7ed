"""The Usage page and its CSV: a workspace's spend, tokens and requests per hour (48 h) or day, by model or by
key, read from the usage rollups — checked against sums computed here from the generation records."""

import csv
import datetime
import io
import itertools
from collections import defaultdict

import pytest
from django.utils import timezone

from billing.models import EntryKind
from billing.services import credits_grant, ledger_post
from billing.usage import MAX_SERIES, UsageFigures, usage_report
from console.services.keys import api_key_create
from gateway.models import Generation, GenerationStatus
from gateway.rollups import roll_up_usage
from tests.factories import make_user, make_workspace

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)
NOW = timezone.now().replace(minute=30, second=0, microsecond=0)


def spend(workspace, *, model: str, key=None, hours_ago: float, prompt=100, completion=40, cost=500, **extra):
    generation = Generation.objects.create(
        request_id=f"usage-{next(_ids)}", workspace=workspace, api_key=key, ingress_format="chat_completions",
        model=model, provider="mock", tokens_prompt=prompt, tokens_completion=completion, cost_micro_usd=cost,
        status=extra.pop("status", GenerationStatus.COMPLETED),
        created_at=NOW - datetime.timedelta(hours=hours_ago), **extra,
    )  # fmt: skip
    if cost:  # billed, so the ledger audit balances
        ledger_post(
            workspace_id=workspace.pk, kind=EntryKind.USAGE, amount_micro_usd=-cost,
            reference=generation.request_id,
        )  # fmt: skip
    return generation


@pytest.fixture
def traffic():
    owner = make_user()
    workspace = make_workspace(owner=owner, name="Usage Co")
    credits_grant(workspace_id=workspace.pk, amount_micro_usd=10_000_000, reason="test credits")
    alpha = api_key_create(workspace=workspace, name="alpha", created_by=owner).record
    beta = api_key_create(workspace=workspace, name="beta", created_by=owner).record
    records = [
        spend(workspace, model="m/one", key=alpha, hours_ago=0.1, cost=1_234),
        spend(workspace, model="m/one", key=alpha, hours_ago=0.2, cost=66, completion=7),
        spend(workspace, model="m/two", key=beta, hours_ago=5, cost=0, status=GenerationStatus.FAILED),
        spend(workspace, model="m/two", key=None, hours_ago=30, cost=999_934, source="chat"),
        spend(workspace, model="m/one", key=beta, hours_ago=24 * 3, cost=5_000, tokens_reasoning=12),
        spend(workspace, model="m/two", key=alpha, hours_ago=24 * 40, cost=7),  # only in 90 days
    ]
    other = make_workspace(name="Elsewhere")
    credits_grant(workspace_id=other.pk, amount_micro_usd=1_000_000, reason="test credits")
    spend(other, model="m/one", hours_ago=0.1, cost=77_777)
    roll_up_usage(now=NOW, since=NOW - datetime.timedelta(days=100))
    return owner, workspace, {"alpha": alpha, "beta": beta}, records


def independent_sums(records, *, hours: int | None = None, days: int | None = None, by: str):
    """{(bucket start, series key): figures}, from the records themselves."""
    sums: dict = defaultdict(UsageFigures)
    now = NOW.astimezone(datetime.UTC)
    for g in records:
        at = g.created_at.astimezone(datetime.UTC)
        if hours is not None:
            bucket = at.replace(minute=0, second=0, microsecond=0)
            first = now.replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=hours - 1)
        else:
            bucket = at.replace(hour=0, minute=0, second=0, microsecond=0)
            first = now.replace(hour=0, minute=0, second=0, microsecond=0) - datetime.timedelta(days=days - 1)
        if bucket < first:
            continue
        key = g.model if by == "model" else ("" if g.api_key_id is None else str(g.api_key_id))
        sums[(bucket, key)] += UsageFigures(
            1,
            g.tokens_prompt,
            g.tokens_completion,
            g.tokens_reasoning,
            g.tokens_cached_prompt,
            g.cost_micro_usd,
        )
    return dict(sums)


def report_sums(report):
    return {
        (start, series.key): series.buckets[i]
        for series in report.series
        for i, start in enumerate(report.bucket_starts)
        if series.buckets[i] != UsageFigures()
    }


@pytest.mark.parametrize(
    ("range_name", "window"), [("48h", {"hours": 48}), ("7d", {"days": 7}), ("90d", {"days": 90})]
)
@pytest.mark.parametrize("by", ["model", "key"])
def test_the_report_equals_the_records_sums_per_bucket_and_series(traffic, range_name, window, by):
    _, workspace, _, records = traffic
    report = usage_report(workspace_id=workspace.pk, range_name=range_name, by=by, now=NOW)
    assert report_sums(report) == independent_sums(records, by=by, **window)
    expected_buckets = window.get("hours") or window["days"]
    assert len(report.bucket_starts) == expected_buckets  # idle buckets are there, as zeros
    assert report.total == sum(independent_sums(records, by=by, **window).values(), UsageFigures())


def test_another_workspaces_usage_never_shows(traffic):
    _, workspace, _, _ = traffic
    report = usage_report(workspace_id=workspace.pk, range_name="48h", by="model", now=NOW)
    assert 77_777 not in [b.cost_micro_usd for s in report.series for b in s.buckets]


def test_beyond_eight_series_the_rest_are_summed_as_other():
    workspace = make_workspace()
    credits_grant(workspace_id=workspace.pk, amount_micro_usd=1_000_000, reason="test credits")
    for n in range(MAX_SERIES + 3):
        spend(workspace, model=f"m/{n:02d}", hours_ago=1, cost=100 * (n + 1))
    roll_up_usage(now=NOW, since=NOW - datetime.timedelta(days=1))
    report = usage_report(workspace_id=workspace.pk, range_name="48h", by="model", now=NOW)
    named = [s.key for s in report.series[:-1]]
    assert named == [f"m/{n:02d}" for n in range(MAX_SERIES + 2, 2, -1)]  # the dearest first
    assert report.series[-1].key is None
    assert report.series[-1].total.cost_micro_usd == 100 + 200 + 300 and report.series[-1].total.requests == 3
    unfolded = usage_report(workspace_id=workspace.pk, range_name="48h", by="model", fold=False, now=NOW)
    assert len(unfolded.series) == MAX_SERIES + 3


def test_the_page_shows_totals_charts_and_the_table(client, traffic):
    owner, _, _, records = traffic
    client.force_login(owner)
    body = client.get("/usage/?range=7d&by=key").content.decode()
    week = independent_sums(records, days=7, by="key")
    total = sum(week.values(), UsageFigures())
    assert f'data-testid="total-requests">{total.requests}<' in body
    assert f'data-testid="total-spend">${total.cost_micro_usd / 1e6:.6f}'.rstrip("0") in body
    for figure in ("spend", "tokens", "requests"):
        assert f'data-testid="chart-{figure}"' in body
    assert "alpha" in body and "beta" in body and "Dashboard chat / playground" in body
    assert "$0.999934" in body  # the chat request's spend, exact
    charts = {
        chunk.split('"')[0]: chunk.split("</svg>")[0] for chunk in body.split('data-testid="chart-')[1:]
    }
    # One segment per bucket and key with something to draw in that chart.
    assert charts["requests"].count("<rect x=") == len(week)
    assert charts["tokens"].count("<rect x=") == sum(f.tokens > 0 for f in week.values())
    assert charts["spend"].count("<rect x=") == sum(f.cost_micro_usd > 0 for f in week.values()) < len(week)


def test_unknown_choices_fall_back_to_30_days_by_model(client, traffic):
    owner, _, _, _ = traffic
    client.force_login(owner)
    response = client.get("/usage/?range=forever&by=colour")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<option value="30d" selected>' in body and '<option value="model" selected>' in body


def test_the_csv_has_a_row_per_bucket_and_series_with_exact_costs(client, traffic):
    owner, workspace, keys, records = traffic
    client.force_login(owner)
    response = client.get("/usage/export.csv?range=90d&by=key")
    assert response["Content-Disposition"] == f'attachment; filename="usage-{workspace.slug}-90d.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    expected = independent_sums(records, days=90, by="key")
    got = {
        (datetime.datetime.fromisoformat(row["bucket_start"]), row["api_key_id"]): UsageFigures(
            int(row["requests"]), int(row["tokens_prompt"]), int(row["tokens_completion"]),
            int(row["tokens_reasoning"]), int(row["tokens_cached_prompt"]), int(row["cost_micro_usd"]),
        )
        for row in rows
    }  # fmt: skip
    assert got == expected
    names = {row["api_key_id"]: row["api_key_name"] for row in rows}
    assert names == {
        str(keys["alpha"].pk): "alpha",
        str(keys["beta"].pk): "beta",
        "": "Dashboard chat / playground",
    }
    for row in rows:
        assert (
            row["cost_usd"]
            == f"{int(row['cost_micro_usd']) // 1_000_000}.{int(row['cost_micro_usd']) % 1_000_000:06d}"
        )


def test_a_workspace_without_usage_is_told_what_to_do_next(client):
    owner = make_user()
    make_workspace(owner=owner)
    client.force_login(owner)
    body = client.get("/usage/").content.decode()
    assert "No usage in this window yet" in body and 'href="/keys/"' in body and "<svg viewBox" not in body
    csv_body = client.get("/usage/export.csv").content.decode()
    assert csv_body.strip() == (
        "bucket_start,model,requests,tokens_prompt,tokens_completion,tokens_reasoning,tokens_cached_prompt,"
        "cost_micro_usd,cost_usd"
    )
