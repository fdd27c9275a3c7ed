import pytest

from billing.errors import InvalidAmount, ReasonRequired
from billing.models import CreditAccount, EntryKind, LedgerEntry
from billing.money import format_usd, usd_to_micro
from billing.services import credits_adjust, credits_grant, ledger_post, ledger_sum
from tests.factories import make_workspace

pytestmark = pytest.mark.django_db


def balance(workspace) -> int:
    return CreditAccount.objects.get(workspace=workspace).balance_micro_usd


def test_a_grant_adds_to_the_balance_and_records_the_balance_after():
    workspace = make_workspace()
    entry = credits_grant(workspace_id=workspace.id, amount_micro_usd=2_500_000, reason="welcome")
    assert balance(workspace) == 2_500_000
    assert entry.balance_after_micro_usd == 2_500_000
    second = credits_grant(workspace_id=workspace.id, amount_micro_usd=1, reason="one more micro-dollar")
    assert second.balance_after_micro_usd == 2_500_001


def test_posting_twice_with_the_same_reference_changes_the_balance_once():
    workspace = make_workspace()
    first = ledger_post(
        workspace_id=workspace.id, kind=EntryKind.PURCHASE, amount_micro_usd=10_000_000, reference="cs_test_1"
    )
    again = ledger_post(
        workspace_id=workspace.id, kind=EntryKind.PURCHASE, amount_micro_usd=10_000_000, reference="cs_test_1"
    )
    assert again.pk == first.pk
    assert balance(workspace) == 10_000_000
    assert LedgerEntry.objects.filter(workspace=workspace).count() == 1


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        (EntryKind.GRANT, -5),
        (EntryKind.PURCHASE, -5),
        (EntryKind.USAGE, 5),
        (EntryKind.REFUND, 5),
        (EntryKind.GRANT, 0),
    ],
)
def test_an_amount_with_the_wrong_sign_for_its_kind_is_refused(kind, amount):
    workspace = make_workspace()
    with pytest.raises(InvalidAmount):
        ledger_post(workspace_id=workspace.id, kind=kind, amount_micro_usd=amount)
    assert balance(workspace) == 0


def test_amounts_must_be_integers_not_floats():
    workspace = make_workspace()
    with pytest.raises(TypeError):
        ledger_post(workspace_id=workspace.id, kind=EntryKind.GRANT, amount_micro_usd=1.5)


def test_an_adjustment_needs_a_reason_and_may_be_negative():
    workspace = make_workspace(credits_micro_usd=1_000_000)
    with pytest.raises(ReasonRequired, match="reason"):
        credits_adjust(workspace_id=workspace.id, amount_micro_usd=-10, reason="  ")
    entry = credits_adjust(workspace_id=workspace.id, amount_micro_usd=-250_000, reason="duplicate grant")
    assert entry.kind == EntryKind.ADJUSTMENT
    assert balance(workspace) == 750_000


def test_the_balance_equals_the_sum_of_the_ledger():
    workspace = make_workspace(credits_micro_usd=5_000_000)
    credits_adjust(workspace_id=workspace.id, amount_micro_usd=-1_234_567, reason="correction")
    ledger_post(
        workspace_id=workspace.id, kind=EntryKind.REFUND, amount_micro_usd=-1_000_000, reference="re_1"
    )
    assert ledger_sum(workspace_id=workspace.id) == balance(workspace) == 2_765_433


def test_usd_parsing_is_exact_and_refuses_sub_micro_amounts():
    assert usd_to_micro("12.50") == 12_500_000
    assert usd_to_micro("0.000001") == 1
    assert usd_to_micro("-3") == -3_000_000
    with pytest.raises(InvalidAmount, match="at most 6 decimals"):
        usd_to_micro("0.0000001")
    with pytest.raises(InvalidAmount, match="not a USD amount"):
        usd_to_micro("twelve")
    assert format_usd(-1_500_000) == "-$1.50"
    assert format_usd(1_234_567_890) == "$1,234.57"
