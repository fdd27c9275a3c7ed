from datetime import timedelta

import pytest
from django.utils import timezone

from billing import reservations
from billing.errors import InsufficientCredits, KeyLimitExceeded, ReservationNotFound
from billing.key_spend import limit_period_start
from billing.models import (
    CreditAccount,
    EntryKind,
    KeySpend,
    LedgerEntry,
    LimitReset,
    Reservation,
    ReservationStatus,
)
from billing.services import ledger_sum
from console.models import ApiKey
from console.services.keys import api_key_create
from tests.factories import make_workspace

# The billing services alone: no generation records for the ledger audit to compare debits with.
pytestmark = [pytest.mark.django_db, pytest.mark.billing_layer]


def account(workspace) -> CreditAccount:
    return CreditAccount.objects.get(workspace=workspace)


def make_key(workspace, **options) -> ApiKey:
    return api_key_create(workspace=workspace, name="k", created_by=None, **options).record


def key_limit_of(key: ApiKey) -> dict:
    """What the meters pass: the key and its limit settings."""
    return {
        "api_key_id": key.id,
        "key_limit_micro_usd": key.limit_micro_usd,
        "key_limit_reset": key.limit_reset,
    }


def spend_of(key: ApiKey) -> KeySpend:
    return KeySpend.objects.get(api_key=key)


def test_reserve_holds_credits_without_spending_them():
    workspace = make_workspace(credits_micro_usd=1_000)
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=600, request_id="r1")
    acc = account(workspace)
    assert (acc.balance_micro_usd, acc.reserved_micro_usd, acc.available_micro_usd) == (1_000, 600, 400)


def test_reserve_refuses_what_the_available_balance_cannot_cover():
    workspace = make_workspace(credits_micro_usd=1_000)
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=600, request_id="r1")
    with pytest.raises(InsufficientCredits) as refused:
        reservations.reserve(
            workspace_id=workspace.id, api_key_id=None, amount_micro_usd=401, request_id="r2"
        )
    assert refused.value.code == "insufficient_credits"
    assert account(workspace).reserved_micro_usd == 600
    assert not Reservation.objects.filter(request_id="r2").exists()
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=400, request_id="r3")
    assert account(workspace).available_micro_usd == 0


def test_reserving_again_with_the_same_request_id_holds_nothing_more():
    workspace = make_workspace(credits_micro_usd=1_000)
    first = reservations.reserve(
        workspace_id=workspace.id, api_key_id=None, amount_micro_usd=300, request_id="same"
    )
    again = reservations.reserve(
        workspace_id=workspace.id, api_key_id=None, amount_micro_usd=300, request_id="same"
    )
    assert again.pk == first.pk
    assert account(workspace).reserved_micro_usd == 300


def test_settle_debits_the_actual_cost_and_releases_the_hold():
    workspace = make_workspace(credits_micro_usd=10_000)
    key = make_key(workspace)
    reservations.reserve(
        workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=5_000, request_id="r1"
    )
    result = reservations.settle(
        request_id="r1", actual_cost_micro_usd=1_234, usage={"completion_tokens": 12}
    )
    assert result.applied and result.cost_micro_usd == 1_234
    acc = account(workspace)
    assert (acc.balance_micro_usd, acc.reserved_micro_usd) == (8_766, 0)
    entry = LedgerEntry.objects.get(kind=EntryKind.USAGE, reference="r1")
    assert entry.amount_micro_usd == -1_234 and entry.api_key_id == key.id
    assert entry.metadata == {"completion_tokens": 12}
    assert (spend_of(key).lifetime_micro_usd, spend_of(key).reserved_micro_usd) == (1_234, 0)
    assert Reservation.objects.get(request_id="r1").status == ReservationStatus.SETTLED


def test_settling_twice_changes_nothing_the_second_time():
    workspace = make_workspace(credits_micro_usd=10_000)
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=5_000, request_id="r1")
    reservations.settle(request_id="r1", actual_cost_micro_usd=1_000)
    replay = reservations.settle(request_id="r1", actual_cost_micro_usd=4_000)
    assert not replay.applied
    assert replay.cost_micro_usd == 1_000
    assert account(workspace).balance_micro_usd == 9_000
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 1


def test_a_free_request_settles_without_a_ledger_entry():
    workspace = make_workspace(credits_micro_usd=10_000)
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=5_000, request_id="r1")
    reservations.settle(request_id="r1", actual_cost_micro_usd=0)
    assert account(workspace).reserved_micro_usd == 0
    assert not LedgerEntry.objects.filter(kind=EntryKind.USAGE).exists()


def test_settling_an_unknown_request_is_an_error_not_a_silent_charge():
    with pytest.raises(ReservationNotFound):
        reservations.settle(request_id="nope", actual_cost_micro_usd=5)


def test_release_gives_back_the_hold_and_charges_nothing():
    workspace = make_workspace(credits_micro_usd=1_000)
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=700, request_id="r1")
    assert reservations.release(request_id="r1") is True
    assert reservations.release(request_id="r1") is False
    acc = account(workspace)
    assert (acc.balance_micro_usd, acc.reserved_micro_usd) == (1_000, 0)
    assert not reservations.settle(request_id="r1", actual_cost_micro_usd=50).applied


def test_the_reaper_releases_reservations_that_never_settled():
    workspace = make_workspace(credits_micro_usd=1_000)
    key = make_key(workspace, limit_micro_usd=900)
    reservations.reserve(
        workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=800, request_id="crashed"
    )
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=100, request_id="fresh")
    Reservation.objects.filter(request_id="crashed").update(expires_at=timezone.now() - timedelta(seconds=1))

    assert reservations.reap_expired() == 1
    assert reservations.reap_expired() == 0
    assert account(workspace).reserved_micro_usd == 100
    assert spend_of(key).reserved_micro_usd == 0
    assert Reservation.objects.get(request_id="crashed").status == ReservationStatus.EXPIRED


def test_a_late_settlement_after_the_reaper_still_charges_exactly_once():
    workspace = make_workspace(credits_micro_usd=1_000)
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=800, request_id="slow")
    reservations.reap_expired(now=timezone.now() + timedelta(days=1))
    assert reservations.settle(request_id="slow", actual_cost_micro_usd=300).applied
    assert not reservations.settle(request_id="slow", actual_cost_micro_usd=300).applied
    acc = account(workspace)
    assert (acc.balance_micro_usd, acc.reserved_micro_usd) == (700, 0)
    assert ledger_sum(workspace_id=workspace.id) == 700


def test_a_key_limit_caps_what_the_key_can_hold_and_spend():
    workspace = make_workspace(credits_micro_usd=100_000)
    key = make_key(workspace, limit_micro_usd=1_000)
    reservations.reserve(
        workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=800, request_id="r1"
    )
    with pytest.raises(KeyLimitExceeded) as refused:
        reservations.reserve(
            workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=300, request_id="r2"
        )
    assert refused.value.code == "key_limit_exceeded"
    # The refused reservation held nothing on the workspace either.
    assert account(workspace).reserved_micro_usd == 800
    reservations.settle(request_id="r1", actual_cost_micro_usd=500)
    reservations.reserve(
        workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=500, request_id="r3"
    )
    with pytest.raises(KeyLimitExceeded):
        reservations.reserve(
            workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=1, request_id="r4"
        )


@pytest.mark.usefixtures("one_utc_day")  # a daily key limit: its day must not end mid-test
def test_a_daily_key_limit_starts_afresh_the_next_day():
    workspace = make_workspace(credits_micro_usd=100_000)
    key = make_key(workspace, limit_micro_usd=1_000, limit_reset=LimitReset.DAILY)
    reservations.reserve(
        workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=1_000, request_id="r1"
    )
    reservations.settle(request_id="r1", actual_cost_micro_usd=1_000)
    with pytest.raises(KeyLimitExceeded):
        reservations.reserve(
            workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=1, request_id="r2"
        )
    yesterday = limit_period_start(LimitReset.DAILY, timezone.now()) - timedelta(days=1)
    KeySpend.objects.filter(api_key=key).update(period_start=yesterday)
    reservations.reserve(
        workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=1_000, request_id="r3"
    )
    spend = spend_of(key)
    assert spend.used_micro_usd == 0 and spend.reserved_micro_usd == 1_000
    assert spend.lifetime_micro_usd == 1_000  # lifetime usage is not reset


def test_limit_periods_start_at_utc_midnight_monday_and_the_first():
    from datetime import UTC, datetime

    now = datetime(2026, 11, 19, 15, 30, tzinfo=UTC)  # a Thursday
    assert limit_period_start(LimitReset.DAILY, now) == datetime(2026, 11, 19, tzinfo=UTC)
    assert limit_period_start(LimitReset.WEEKLY, now) == datetime(2026, 11, 16, tzinfo=UTC)
    assert limit_period_start(LimitReset.MONTHLY, now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert limit_period_start(LimitReset.NONE, now) is None


@pytest.mark.usefixtures("one_utc_day")  # a daily key limit: its day must not end mid-test
def test_a_key_without_its_spend_row_gets_one_when_it_holds():
    workspace = make_workspace(credits_micro_usd=10_000)
    key = make_key(workspace, limit_micro_usd=1_000, limit_reset=LimitReset.DAILY)
    KeySpend.objects.filter(api_key=key).delete()
    reservations.reserve(
        workspace_id=workspace.id, **key_limit_of(key), amount_micro_usd=600, request_id="r1"
    )
    assert spend_of(key).reserved_micro_usd == 600
    assert spend_of(key).period_start == limit_period_start(LimitReset.DAILY, timezone.now())
    reservations.settle(request_id="r1", actual_cost_micro_usd=250)
    assert (spend_of(key).reserved_micro_usd, spend_of(key).lifetime_micro_usd) == (0, 250)
