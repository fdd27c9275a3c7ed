"""Usage rollups (gateway/rollups.py): generation records summed per UTC hour and day, per workspace, key,
model, provider and outcome — exact against a sum computed here, idempotent, late records counted once,
concurrent runs serialized, and equal to the ledger's usage debits after real traffic."""

import datetime
import threading
import time
from collections import Counter, defaultdict
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.db import connection

from billing.models import EntryKind, LedgerEntry, UsagePeriod, UsageRollup
from billing.services import usage_debits_post
from console.services.keys import api_key_create
from gateway.models import Generation, GenerationStatus
from gateway.rollups import LOOKBACK_HOURS, roll_up_usage
from gateway.tasks import roll_up_usage_task
from tests.factories import make_workspace
from tests.gateway.conftest import settled_generation

UTC = datetime.UTC
NOW = datetime.datetime(2026, 12, 3, 1, 30, tzinfo=UTC)  # half past one: the last hours span two days
SUMS = ("requests", "tokens_prompt", "tokens_completion", "tokens_reasoning", "tokens_cached_prompt", "cost")


@pytest.fixture
def record(db):
    numbers = iter(range(1_000_000))

    def make(workspace, *, at, model="a/m", provider="p1", key=None, status="completed", **fields):
        """A settled generation: its record and, as settlement posts it, its usage debit."""
        defaults = {"tokens_prompt": 10, "tokens_completion": 5, "cost_micro_usd": 25}
        generation = Generation.objects.create(
            request_id=f"rollup-{next(numbers)}",
            workspace=workspace,
            api_key=key,
            ingress_format="chat_completions",
            model=model,
            provider=provider,
            status=status,
            created_at=at,
            **{**defaults, **fields},
        )
        if generation.cost_micro_usd:
            usage_debits_post(
                [(workspace.id, generation.request_id, key and key.id, generation.cost_micro_usd, {})]
            )
        return generation

    return make


def expected_rows(generations, period: str) -> dict[tuple, Counter]:
    """The rollup computed here, from the records, independently of the code under test."""
    rows: dict[tuple, Counter] = defaultdict(Counter)
    for g in generations:
        at = g.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        bucket = at if period == UsagePeriod.HOUR else at.replace(hour=0)
        key = (bucket, g.workspace_id, g.api_key_id, g.model, g.provider, g.status)
        rows[key].update(
            requests=1,
            tokens_prompt=g.tokens_prompt,
            tokens_completion=g.tokens_completion,
            tokens_reasoning=g.tokens_reasoning,
            tokens_cached_prompt=g.tokens_cached_prompt,
            cost=g.cost_micro_usd,
        )
    return dict(rows)


def stored_rows(period: str) -> dict[tuple, Counter]:
    rows = {}
    for r in UsageRollup.objects.filter(period=period):
        key = (r.bucket_start, r.workspace_id, r.api_key_id, r.model, r.provider, r.status)
        assert key not in rows, f"two rows for {key}"
        values = (
            r.requests,
            r.tokens_prompt,
            r.tokens_completion,
            r.tokens_reasoning,
            r.tokens_cached_prompt,
        )
        rows[key] = +Counter(dict(zip(SUMS, (*values, r.cost_micro_usd), strict=True)))
    return rows


def traffic(record) -> list[Generation]:
    """Two workspaces, two keys, two models, two providers, every outcome, over four hours and two days."""
    first, second = make_workspace(), make_workspace()
    key_a = api_key_create(workspace=first, name="a", created_by=None).record
    key_b = api_key_create(workspace=first, name="b", created_by=None).record
    hour = datetime.timedelta(hours=1)
    minute, failed = (
        datetime.timedelta(minutes=1),
        {"status": "failed", "tokens_prompt": 0, "tokens_completion": 0},
    )
    cancelled = {"status": "cancelled", "tokens_completion": 2}
    return [
        record(first, at=NOW - 10 * minute, key=key_a),
        record(first, at=NOW - 20 * minute, key=key_a, tokens_prompt=7, cost_micro_usd=9),
        record(first, at=NOW - 25 * minute, key=key_b, model="b/m", provider="p2"),
        record(first, at=NOW - hour, key=key_a, cost_micro_usd=0, **failed),
        record(first, at=NOW - 2 * hour, key=key_b, cost_micro_usd=3, **cancelled),
        record(first, at=NOW - 2 * hour, tokens_reasoning=3, tokens_cached_prompt=4),  # yesterday 23:30
        record(second, at=NOW - 2 * hour - 20 * minute, model="b/m"),
        record(second, at=NOW - 30 * minute, cost_micro_usd=1_000_000),
    ]  # fmt: skip


def test_hours_and_days_are_the_exact_sums_of_the_records(record):
    generations = traffic(record)
    written = roll_up_usage(now=NOW, since=NOW - datetime.timedelta(hours=LOOKBACK_HOURS))
    assert stored_rows(UsagePeriod.HOUR) == expected_rows(generations, UsagePeriod.HOUR)
    assert stored_rows(UsagePeriod.DAY) == expected_rows(generations, UsagePeriod.DAY)
    assert written == len(expected_rows(generations, UsagePeriod.HOUR))
    days = {bucket for bucket, *_ in stored_rows(UsagePeriod.DAY)}
    assert days == {datetime.datetime(2026, 12, 2, tzinfo=UTC), datetime.datetime(2026, 12, 3, tzinfo=UTC)}
    total = sum(row["cost"] for row in stored_rows(UsagePeriod.DAY).values())
    assert total == sum(g.cost_micro_usd for g in generations) == 1_000_000 + 25 * 4 + 9 + 3


def test_running_twice_changes_nothing(record):
    traffic(record)
    roll_up_usage(now=NOW)
    hours, days = stored_rows(UsagePeriod.HOUR), stored_rows(UsagePeriod.DAY)
    roll_up_usage(now=NOW)
    roll_up_usage(now=NOW + datetime.timedelta(minutes=1))
    assert (stored_rows(UsagePeriod.HOUR), stored_rows(UsagePeriod.DAY)) == (hours, days)


def test_a_late_record_is_counted_once_when_its_hour_is_recomputed(record):
    generations = traffic(record)
    roll_up_usage(now=NOW)
    # Written after its hour was rolled up (a settlement the journal retried, the Redis writer catching up).
    workspace = generations[0].workspace
    generations.append(record(workspace, at=NOW - datetime.timedelta(minutes=50), cost_micro_usd=70))
    roll_up_usage(now=NOW + datetime.timedelta(minutes=1))
    roll_up_usage(now=NOW + datetime.timedelta(minutes=2))
    assert stored_rows(UsagePeriod.HOUR) == expected_rows(generations, UsagePeriod.HOUR)
    assert stored_rows(UsagePeriod.DAY) == expected_rows(generations, UsagePeriod.DAY)


def test_a_record_older_than_the_lookback_waits_for_the_backfill_command(record):
    workspace = make_workspace()
    recent = record(workspace, at=NOW - datetime.timedelta(minutes=5))
    roll_up_usage(now=NOW)
    old = record(workspace, at=NOW - datetime.timedelta(hours=LOOKBACK_HOURS + 5), cost_micro_usd=500)
    roll_up_usage(now=NOW)
    assert stored_rows(UsagePeriod.HOUR) == expected_rows([recent], UsagePeriod.HOUR)

    out = StringIO()
    since = (NOW - datetime.timedelta(days=2)).date().isoformat()
    call_command("usage_rollup", "--since", since, stdout=out)
    assert "hour rows recomputed" in out.getvalue()
    # The command recomputes up to the current hour of the real clock: the fixed NOW is in the past.
    assert stored_rows(UsagePeriod.HOUR) == expected_rows([recent, old], UsagePeriod.HOUR)
    assert stored_rows(UsagePeriod.DAY) == expected_rows([recent, old], UsagePeriod.DAY)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_double_count(record):
    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    generations = traffic(record)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(5):
                roll_up_usage(now=NOW)
        except BaseException as exc:  # reported below, with the test's own assertion
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stored_rows(UsagePeriod.HOUR) == expected_rows(generations, UsagePeriod.HOUR)
    assert stored_rows(UsagePeriod.DAY) == expected_rows(generations, UsagePeriod.DAY)


def test_after_real_traffic_the_rollups_equal_the_ledgers_usage_debits(gateway_url, funded_key):
    workspace, key = funded_key
    headers = {"Authorization": f"Bearer {key}"}
    bodies = [
        ("/api/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
        ("/api/v1/responses", {"input": "Hello there", "stream": True}),
        ("/api/v1/messages", {"max_tokens": 50, "messages": [{"role": "user", "content": "Hey"}]}),
        (
            "/api/v1/chat/completions",
            {"model": "no/such-model", "messages": [{"role": "user", "content": "x"}]},
        ),
    ]
    with httpx.Client(timeout=10) as client:
        for path, body in bodies:
            answer = client.post(
                gateway_url + path, headers=headers, json={"model": "hyperinfer/sandbox-pro", **body}
            )
            if answer.status_code == 200:
                settled_generation(answer.headers["x-request-id"])
    roll_up_usage()
    rows = UsageRollup.objects.filter(workspace=workspace, period=UsagePeriod.DAY)
    debits = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.USAGE)
    assert sum(r.requests for r in rows) == Generation.objects.filter(workspace=workspace).count() == 3
    assert sum(r.cost_micro_usd for r in rows) == -sum(d.amount_micro_usd for d in debits) > 0
    assert {r.api_key_id for r in rows} == {Generation.objects.filter(workspace=workspace).first().api_key_id}
    assert {r.status for r in rows} == {GenerationStatus.COMPLETED}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_celery_task_on_a_real_worker_rolls_up_and_rerunning_changes_nothing(worker, record):
    workspace = make_workspace()
    now = datetime.datetime.now(UTC)
    generations = [record(workspace, at=now - datetime.timedelta(minutes=m)) for m in (1, 2, 70)]
    roll_up_usage_task.delay()
    wait_for(lambda: stored_rows(UsagePeriod.HOUR) == expected_rows(generations, UsagePeriod.HOUR), worker)
    first_run = set(UsageRollup.objects.values_list("id", flat=True))
    roll_up_usage_task.delay()
    # The second run replaced every row (new ids) with the same figures.
    wait_for(lambda: not first_run & set(UsageRollup.objects.values_list("id", flat=True)), worker)
    assert stored_rows(UsagePeriod.HOUR) == expected_rows(generations, UsagePeriod.HOUR)
    assert stored_rows(UsagePeriod.DAY) == expected_rows(generations, UsagePeriod.DAY)


def wait_for(condition, worker, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
        assert time.monotonic() < deadline, "the worker never did it"
        time.sleep(0.1)


def test_operators_see_the_rollups_read_only_in_admin(record, admin_client):
    traffic(record)
    roll_up_usage(now=NOW)
    listed = admin_client.get("/admin/billing/usagerollup/", {"period__exact": "day", "q": "b/m"})
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 2  # b/m's day rows: one per workspace and day
    assert admin_client.get("/admin/billing/usagerollup/add/").status_code == 403


def test_the_first_run_rolls_up_all_history_and_a_stopped_beat_catches_up(record):
    workspace = make_workspace()
    history = [record(workspace, at=NOW - datetime.timedelta(days=days)) for days in (3, 2)]
    roll_up_usage(now=NOW)  # nothing rolled yet: from the first record on
    assert stored_rows(UsagePeriod.HOUR) == expected_rows(history, UsagePeriod.HOUR)
    # Beat stops; records keep coming for ten hours; the next run reaches back to where it stopped.
    later = [record(workspace, at=NOW + datetime.timedelta(hours=h)) for h in (1, 5, 9)]
    roll_up_usage(now=NOW + datetime.timedelta(hours=10))
    assert stored_rows(UsagePeriod.HOUR) == expected_rows(history + later, UsagePeriod.HOUR)
    assert stored_rows(UsagePeriod.DAY) == expected_rows(history + later, UsagePeriod.DAY)
