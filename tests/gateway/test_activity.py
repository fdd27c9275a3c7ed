"""The activity log: a workspace's generation records, newest first, filtered, paged by cursor; a detail page
per record with /api/v1/generation's fields; refusals for money recorded at no charge."""

import datetime
import html
import json
import re

import httpx
import pytest
from django.utils import timezone

from billing.models import EntryKind
from billing.services import credits_grant, ledger_post
from console.services.keys import api_key_create
from gateway.activity import ActivityFilters, activity_filters_parse, activity_page, cursor_encode
from gateway.metering.records import generation_data
from gateway.models import Generation, GenerationStatus
from tests.factories import make_user, make_workspace
from tests.gateway.conftest import settled_generation
from tests.rate_windows import a_fresh_minute

pytestmark = pytest.mark.django_db


def funded(name: str, owner=None):
    workspace = make_workspace(owner=owner, name=name)
    credits_grant(workspace_id=workspace.pk, amount_micro_usd=1_000_000, reason="test credits")
    return workspace


def record(workspace, n: int, **fields) -> Generation:
    defaults = {
        "request_id": f"req-{workspace.slug}-{n}",
        "workspace": workspace,
        "ingress_format": "chat_completions",
        "model": "hyperinfer/sandbox-pro",
        "provider": "mock",
        "tokens_prompt": 10 + n,
        "tokens_completion": 20 + n,
        "cost_micro_usd": 7 * n,
        "latency_ms": 100 + n,
        "ttft_ms": 40,
        "status": GenerationStatus.COMPLETED,
        "created_at": timezone.now() - datetime.timedelta(minutes=n),
    }
    generation = Generation.objects.create(**{**defaults, **fields})
    if generation.cost_micro_usd:  # billed as the meters bill it, so the ledger audit balances
        ledger_post(
            workspace_id=workspace.pk, kind=EntryKind.USAGE, amount_micro_usd=-generation.cost_micro_usd,
            reference=generation.request_id,
        )  # fmt: skip
    return generation


@pytest.fixture
def owner_and_workspace():
    owner = make_user()
    return owner, funded("Acme", owner)


def test_pages_follow_each_other_newest_first_without_gaps_or_repeats_even_when_times_tie(
    owner_and_workspace,
):
    _, workspace = owner_and_workspace
    tied = timezone.now() - datetime.timedelta(hours=1)
    made = [record(workspace, n) for n in range(7)] + [
        record(workspace, 100 + n, created_at=tied) for n in range(5)
    ]
    expected = sorted(made, key=lambda g: (g.created_at, g.pk), reverse=True)
    seen, cursor = [], ""
    for _ in range(10):
        page = activity_page(workspace_id=workspace.pk, filters=ActivityFilters(), cursor=cursor, size=3)
        seen += page.rows
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [g.pk for g in seen] == [g.pk for g in expected]


def test_another_workspaces_records_never_show(owner_and_workspace):
    _, workspace = owner_and_workspace
    other = funded("Other")
    record(other, 1)
    mine = record(workspace, 2)
    page = activity_page(workspace_id=workspace.pk, filters=ActivityFilters())
    assert [g.pk for g in page.rows] == [mine.pk]


def test_each_filter_narrows_to_the_matching_records(owner_and_workspace):
    owner, workspace = owner_and_workspace
    key_a = api_key_create(workspace=workspace, name="a", created_by=owner).record
    key_b = api_key_create(workspace=workspace, name="b", created_by=owner).record
    rows = [
        record(workspace, 1, api_key=key_a),
        record(workspace, 2, api_key=key_b, model="hyperinfer/sandbox"),
        record(workspace, 3, api_key=key_a, provider="cerebras", ingress_format="responses"),
        record(
            workspace, 4, source="chat", status=GenerationStatus.FAILED, error_code="insufficient_credits"
        ),
        record(workspace, 60 * 24 * 3, api_key=key_b),  # three days ago
    ]
    cases = {
        "key": (str(key_a.pk), lambda g: g.api_key_id == key_a.pk),
        "model": ("hyperinfer/sandbox", lambda g: g.model == "hyperinfer/sandbox"),
        "provider": ("cerebras", lambda g: g.provider == "cerebras"),
        "format": ("responses", lambda g: g.ingress_format == "responses"),
        "source": ("chat", lambda g: g.source == "chat"),
        "status": ("failed", lambda g: g.status == "failed"),
    }
    for name, (value, matches) in cases.items():
        filters, errors = activity_filters_parse({name: value})
        assert not errors
        got = activity_page(workspace_id=workspace.pk, filters=filters).rows
        assert {g.pk for g in got} == {g.pk for g in rows if matches(g)}, name
    old_day = rows[-1].created_at.astimezone(datetime.UTC).date()
    filters, _ = activity_filters_parse({"since": old_day.isoformat(), "until": old_day.isoformat()})
    assert [g.pk for g in activity_page(workspace_id=workspace.pk, filters=filters).rows] == [rows[-1].pk]


def test_unreadable_filters_are_named_and_ignored_and_a_bad_cursor_starts_over(owner_and_workspace):
    _, workspace = owner_and_workspace
    record(workspace, 1)
    filters, errors = activity_filters_parse({"status": "exploded", "since": "yesterday", "key": "x"})
    assert set(errors) == {"status", "since", "key"} and filters == ActivityFilters()
    page = activity_page(workspace_id=workspace.pk, filters=filters, cursor="!!not-a-cursor")
    assert len(page.rows) == 1


def test_the_activity_page_lists_records_with_their_figures_and_pages_on(client, owner_and_workspace):
    owner, workspace = owner_and_workspace
    made = [record(workspace, n, cost_micro_usd=66 * (n + 1)) for n in range(55)]
    client.force_login(owner)
    response = client.get("/activity/")
    assert response.status_code == 200
    body = response.content.decode()
    ids = re.findall(r'data-request-id="([^"]+)"', body)
    assert ids == [g.request_id for g in made[:50]]
    assert "$0.000066" in body  # the newest's cost, to the micro-dollar
    older = html.unescape(re.search(r'rel="next" href="\?([^"]+)"', body).group(1))
    assert older == f"cursor={cursor_encode(made[49])}"
    second = client.get(f"/activity/?{older}").content.decode()
    assert re.findall(r'data-request-id="([^"]+)"', second) == [g.request_id for g in made[50:]]
    assert 'rel="next"' not in second


def test_the_detail_page_shows_the_apis_fields_and_what_a_failure_means(client, owner_and_workspace):
    owner, workspace = owner_and_workspace
    failed = record(
        workspace, 1, status=GenerationStatus.FAILED, error_code="insufficient_credits", cost_micro_usd=0,
        tool_costs_micro_usd={"web_search": 5000},
    )  # fmt: skip
    client.force_login(owner)
    body = client.get(f"/activity/{failed.request_id}/").content.decode()
    for name, value in generation_data(failed).items():
        shown = value if isinstance(value, str) else json.dumps(value)
        assert f'data-field="{name}">{html.escape(shown)}</td>' in body, name
    assert "insufficient_credits" in body and "Add credits" in body


def test_another_workspaces_record_is_not_found(client, owner_and_workspace):
    owner, _ = owner_and_workspace
    theirs = record(funded("Theirs"), 1)
    client.force_login(owner)
    assert client.get(f"/activity/{theirs.request_id}/").status_code == 404
    assert client.get("/activity/").status_code == 200
    client.logout()
    assert client.get("/activity/").status_code == 302  # to the log-in page


def test_a_ledger_usage_row_links_to_its_generation(client, owner_and_workspace):
    owner, workspace = owner_and_workspace
    generation = record(workspace, 1)
    client.force_login(owner)
    body = client.get("/billing/").content.decode()
    assert f'href="/activity/{generation.request_id}/"' in body


# --- refusals for money, through the running gateway --------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_refused_for_credits_is_recorded_failed_at_no_charge_and_the_api_returns_it(gateway_url):
    owner = make_user()
    workspace = make_workspace(owner=owner)  # no credits
    secret = api_key_create(workspace=workspace, name="broke", created_by=owner).secret
    headers = {"Authorization": f"Bearer {secret}"}
    body = {
        "model": "hyperinfer/sandbox-pro",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    response = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert response.status_code == 402 and response.json()["error"]["code"] == "insufficient_credits"
    request_id = response.headers["x-request-id"]
    generation = settled_generation(request_id)  # written just after the answer
    assert (generation.status, generation.error_code, generation.cost_micro_usd) == (
        "failed", "insufficient_credits", 0,
    )  # fmt: skip
    assert (generation.model, generation.streamed, generation.api_key.name) == (
        "hyperinfer/sandbox-pro",
        True,
        "broke",
    )
    looked_up = httpx.get(
        f"{gateway_url}/api/v1/generation", params={"id": request_id}, headers=headers
    ).json()
    assert looked_up["data"]["error_code"] == "insufficient_credits"
    assert looked_up["data"]["total_cost"] == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_request_is_not_recorded(gateway_url):
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    secret = api_key_create(workspace=workspace, name="slow", created_by=owner, rate_limit_rpm=1).secret
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": "hyperinfer/sandbox", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    a_fresh_minute()  # both in one window (CI once sent them either side of a minute's turn: 200, 200)
    first = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=body, headers=headers, timeout=10)
    second = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert (first.status_code, second.status_code) == (200, 429)
    assert not Generation.objects.filter(request_id=second.headers["x-request-id"]).exists()
