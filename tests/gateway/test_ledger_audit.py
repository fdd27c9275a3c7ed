"""The ledger audit finds every broken money invariant, names the workspace and the difference, and is
quiet when the books balance (after real gateway traffic, in whichever meter the run uses)."""

import time
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from billing import mirror, reservations
from billing.models import CreditAccount, Reservation
from gateway.audit import REAPER_GRACE_SECONDS, ledger_audit
from gateway.models import Generation
from gateway.tasks import audit_ledger
from tests.factories import make_workspace
from tests.gateway.conftest import settled_generation


def spend(gateway_url: str, key: str) -> None:
    """Two priced answers, one streamed, fully settled and written."""
    for stream in (False, True):
        answer = httpx.post(
            f"{gateway_url}/api/v1/chat/completions",
            json={
                "model": "hyperinfer/sandbox-pro",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": stream,
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=20,
        )
        assert answer.status_code == 200
        assert settled_generation(answer.headers["x-request-id"]).cost_micro_usd > 0


def test_books_that_balance_after_real_traffic_pass_the_audit(gateway_url, funded_key):
    _, key = funded_key
    spend(gateway_url, key)
    assert ledger_audit() == []
    out = StringIO()
    call_command("ledger_audit", stdout=out)
    assert "every workspace balances" in out.getvalue()


@pytest.mark.ledger_unbalanced
def test_a_balance_off_its_ledger_is_named_with_the_difference(gateway_url, funded_key):
    workspace, key = funded_key
    spend(gateway_url, key)
    CreditAccount.objects.filter(workspace=workspace).update(balance_micro_usd=F("balance_micro_usd") + 7)
    [finding] = ledger_audit()
    assert (finding.workspace_id, finding.rule, finding.actual - finding.expected) == (
        workspace.id,
        "balance = sum of ledger entries",
        7,
    )
    err = StringIO()
    with pytest.raises(CommandError, match="1 finding"):
        call_command("ledger_audit", stderr=err)
    assert str(workspace.id) in err.getvalue() and "(+7)" in err.getvalue()
    assert audit_ledger() == 1


@pytest.mark.ledger_unbalanced
def test_a_generation_billed_differently_from_its_debit_is_found(gateway_url, funded_key):
    workspace, key = funded_key
    spend(gateway_url, key)
    Generation.objects.filter(workspace=workspace).update(cost_micro_usd=F("cost_micro_usd") + 3)
    rules = {(f.rule, f.expected - f.actual) for f in ledger_audit()}
    assert rules == {("usage debits = generations' costs", 6)}


@pytest.mark.django_db
@pytest.mark.ledger_unbalanced
def test_holds_that_outlived_the_reaper_are_found():
    workspace = make_workspace(credits_micro_usd=10_000)
    reservations.reserve(workspace_id=workspace.id, api_key_id=None, amount_micro_usd=500, request_id="stuck")
    assert ledger_audit() == []  # a hold in flight is fine
    long_ago = timezone.now() - timedelta(seconds=REAPER_GRACE_SECONDS + 60)
    Reservation.objects.filter(request_id="stuck").update(expires_at=long_ago)
    assert [(f.rule, f.actual) for f in ledger_audit()] == [("reservations held past their time to live", 1)]
    CreditAccount.objects.filter(workspace=workspace).update(reserved_micro_usd=0)
    assert ("reserved = held reservations", 500, 0) in {
        (f.rule, f.expected, f.actual) for f in ledger_audit()
    }


@pytest.mark.redis
@pytest.mark.django_db
def test_a_redis_hold_that_outlived_the_reaper_is_found(meter_redis):
    client = mirror.sync_client()
    last_shard = mirror.holds(mirror.shard_count() - 1)  # the audit counts every shard's holds
    client.zadd(last_shard, {"audit-test-hold": time.time() - REAPER_GRACE_SECONDS - 60})
    try:
        assert [(f.rule, f.actual) for f in ledger_audit()] == [("Redis holds past their time to live", 1)]
    finally:
        client.zrem(last_shard, "audit-test-hold")
    assert ledger_audit() == []
