"""The money invariants under real concurrency, on PostgreSQL (design §4.1-4.3)."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from billing import reservations
from billing.errors import InsufficientCredits, KeyLimitExceeded
from billing.models import CreditAccount, EntryKind, KeySpend, LedgerEntry, Reservation
from billing.services import ledger_post, ledger_sum
from console.services.keys import api_key_create
from tests.factories import make_workspace

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.billing_layer]

# PostgreSQL allows 100 connections by default: 200 threads contend through at most this many at once.
MAX_CONNECTIONS = 60


def run_concurrently(count: int, work) -> list:
    """Start `count` threads at the same instant; each runs work(i) on its own database connection."""
    start = threading.Barrier(count)
    gate = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def one(i: int):
        start.wait()
        with gate:
            try:
                return work(i)
            finally:
                connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_200_concurrent_reservations_on_a_balance_for_50_never_overspend(on_postgres):
    assert on_postgres
    price = 20_000
    workspace = make_workspace(credits_micro_usd=50 * price)
    lowest_available = []
    stop = threading.Event()

    def watch_available():
        while not stop.is_set():
            acc = CreditAccount.objects.get(workspace=workspace)
            lowest_available.append(acc.available_micro_usd)
        connection.close()

    def attempt(i: int) -> bool:
        try:
            reservations.reserve(
                workspace_id=workspace.id, api_key_id=None, amount_micro_usd=price, request_id=f"req-{i}"
            )
        except InsufficientCredits:
            return False
        return True

    watcher = threading.Thread(target=watch_available)
    watcher.start()
    try:
        outcomes = run_concurrently(200, attempt)
    finally:
        stop.set()
        watcher.join()

    assert outcomes.count(True) == 50
    assert Reservation.objects.filter(workspace=workspace).count() == 50
    acc = CreditAccount.objects.get(workspace=workspace)
    assert acc.reserved_micro_usd == 50 * price and acc.available_micro_usd == 0
    assert lowest_available and min(lowest_available) >= 0

    costs = {r.request_id: random.randint(0, price) for r in Reservation.objects.filter(workspace=workspace)}
    run_concurrently(
        len(costs),
        lambda i: reservations.settle(
            request_id=list(costs)[i], actual_cost_micro_usd=list(costs.values())[i]
        ),
    )

    acc.refresh_from_db()
    assert acc.reserved_micro_usd == 0
    assert acc.balance_micro_usd == 50 * price - sum(costs.values())
    assert ledger_sum(workspace_id=workspace.id) == acc.balance_micro_usd
    usage = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.USAGE)
    assert -sum(e.amount_micro_usd for e in usage) == sum(costs.values())


def test_concurrent_reservations_respect_the_key_limit_and_the_balance_together(on_postgres):
    workspace = make_workspace(credits_micro_usd=1_000_000)
    key = api_key_create(workspace=workspace, name="capped", created_by=None, limit_micro_usd=30_000).record

    def attempt(i: int) -> str:
        try:
            reservations.reserve(
                workspace_id=workspace.id,
                api_key_id=key.id,
                amount_micro_usd=1_000,
                request_id=f"k-{i}",
                key_limit_micro_usd=key.limit_micro_usd,
            )
        except KeyLimitExceeded:
            return "limited"
        return "held"

    outcomes = run_concurrently(100, attempt)
    assert outcomes.count("held") == 30
    assert KeySpend.objects.get(api_key=key).reserved_micro_usd == 30_000
    # Refused reservations were rolled back on the workspace too.
    assert CreditAccount.objects.get(workspace=workspace).reserved_micro_usd == 30_000


def test_a_settlement_replayed_concurrently_is_applied_exactly_once(on_postgres):
    workspace = make_workspace(credits_micro_usd=100_000)
    reservations.reserve(
        workspace_id=workspace.id, api_key_id=None, amount_micro_usd=10_000, request_id="replayed"
    )

    results = run_concurrently(
        40, lambda i: reservations.settle(request_id="replayed", actual_cost_micro_usd=7_000).applied
    )

    assert results.count(True) == 1
    acc = CreditAccount.objects.get(workspace=workspace)
    assert (acc.balance_micro_usd, acc.reserved_micro_usd) == (93_000, 0)
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference="replayed").count() == 1


def test_the_same_purchase_posted_concurrently_credits_once(on_postgres):
    workspace = make_workspace()
    entries = run_concurrently(
        30,
        lambda i: (
            ledger_post(
                workspace_id=workspace.id,
                kind=EntryKind.PURCHASE,
                amount_micro_usd=5_000_000,
                reference="cs_live_42",
            ).pk
        ),
    )
    assert len(set(entries)) == 1
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == 5_000_000
