"""Money in, at the service level, against localstripe (a real server): a card payment credits the
workspace once, 3-D Secure completes or fails, a declined card credits nothing, refunds post refund entries.
Every test ends with the ledger audit (tests/conftest.py)."""

import pytest

from billing import stripe_api
from billing.errors import InvalidAmount, PaymentDeclined
from billing.models import EntryKind, LedgerEntry, Payment, PaymentStatus, StripeCustomer
from billing.payments import (
    card_setup_start,
    credits_amount,
    payment_refresh,
    payment_start,
    payment_sync,
)
from billing.refunds import payment_refund
from billing.selectors import account_balance
from billing.services import ledger_post
from tests.factories import make_workspace
from tests.stripe_double import card_set_up, three_d_secure

pytestmark = pytest.mark.django_db

TEN_DOLLARS = 10_000_000


def card(url: str, workspace, number: str = "4242424242424242") -> str:
    """A card set up in the browser for the workspace: its PaymentMethod id."""
    setup = card_set_up(url, card_setup_start(workspace_id=workspace.pk, email="o@example.com"), number)
    assert "error" not in setup, setup
    return setup["payment_method"]


def purchases(workspace) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.PURCHASE))


@pytest.mark.parametrize(
    ("typed", "micro"),
    [("10", 10_000_000), ("$25.50", 25_500_000), ("5", 5_000_000), ("1000.00", 1_000_000_000)],
)
def test_an_amount_in_dollars_and_cents_within_bounds_is_accepted(typed, micro):
    assert credits_amount(typed) == micro


@pytest.mark.parametrize("typed", ["4.99", "1000.01", "10.001", "ten", "", "NaN", "-10"])
def test_other_amounts_are_refused_naming_the_field(typed):
    with pytest.raises(InvalidAmount, match=r"^amount: "):
        credits_amount(typed)


def test_a_card_payment_credits_the_workspace_once(stripe_double):
    workspace = make_workspace(credits_micro_usd=0)
    method = card(stripe_double, workspace)
    started = payment_start(
        workspace_id=workspace.pk, email="o@example.com", amount_micro_usd=TEN_DOLLARS,
        payment_method_id=method, save_card=True,
    )  # fmt: skip
    payment = started.payment
    assert payment.status == PaymentStatus.SUCCEEDED and (payment.card_brand, payment.card_last4) == (
        "visa",
        "4242",
    )
    assert account_balance(workspace_id=workspace.pk) == TEN_DOLLARS
    # The browser's return and the webhook report the same payment again: nothing more is credited.
    payment_sync(stripe_api.payment_intent_retrieve(payment.payment_intent_id))
    payment_refresh(workspace_id=workspace.pk, payment_intent_id=payment.payment_intent_id)
    assert [(e.amount_micro_usd, e.reference) for e in purchases(workspace)] == [
        (TEN_DOLLARS, payment.payment_intent_id)
    ]
    assert account_balance(workspace_id=workspace.pk) == TEN_DOLLARS
    saved = StripeCustomer.objects.get(workspace=workspace)
    assert (saved.payment_method_id, saved.card_last4) == (
        started.payment.payment_intent_id and saved.payment_method_id,
        "4242",
    )


def test_a_card_that_asks_for_3d_secure_is_credited_once_authenticated(stripe_double):
    workspace = make_workspace(credits_micro_usd=0)
    started = payment_start(
        workspace_id=workspace.pk, email="o@example.com", amount_micro_usd=TEN_DOLLARS,
        payment_method_id=card(stripe_double, workspace, "4000002760003184"), save_card=False,
    )  # fmt: skip
    assert started.payment.status == PaymentStatus.REQUIRES_ACTION and started.client_secret
    assert account_balance(workspace_id=workspace.pk) == 0  # not before the card holder says yes
    three_d_secure(stripe_double, started.client_secret, success=True)
    payment = payment_refresh(workspace_id=workspace.pk, payment_intent_id=started.payment.payment_intent_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert account_balance(workspace_id=workspace.pk) == TEN_DOLLARS
    assert not StripeCustomer.objects.get(workspace=workspace).payment_method_id  # not saved when not asked


def test_a_failed_3d_secure_credits_nothing(stripe_double):
    workspace = make_workspace(credits_micro_usd=0)
    started = payment_start(
        workspace_id=workspace.pk, email="o@example.com", amount_micro_usd=TEN_DOLLARS,
        payment_method_id=card(stripe_double, workspace, "4000002760003184"), save_card=False,
    )  # fmt: skip
    three_d_secure(stripe_double, started.client_secret, success=False)
    payment = payment_refresh(workspace_id=workspace.pk, payment_intent_id=started.payment.payment_intent_id)
    assert payment.status != PaymentStatus.SUCCEEDED
    assert account_balance(workspace_id=workspace.pk) == 0 and purchases(workspace) == []


def test_a_declined_card_raises_with_the_issuers_message_and_credits_nothing(stripe_double):
    workspace = make_workspace(credits_micro_usd=0)
    with pytest.raises(PaymentDeclined, match="declined"):
        payment_start(
            workspace_id=workspace.pk, email="o@example.com", amount_micro_usd=TEN_DOLLARS,
            payment_method_id=card(stripe_double, workspace, "4000000000000341"), save_card=True,
        )  # fmt: skip
    assert account_balance(workspace_id=workspace.pk) == 0 and purchases(workspace) == []


def test_a_card_declined_when_set_up_never_reaches_a_payment(stripe_double):
    workspace = make_workspace(credits_micro_usd=0)
    setup = card_set_up(
        stripe_double, card_setup_start(workspace_id=workspace.pk, email="o@example.com"), "4000000000000002"
    )
    assert "declined" in setup["error"]["message"]
    assert not Payment.objects.filter(workspace=workspace).exists()


def test_a_refund_posts_a_refund_entry_and_may_take_the_balance_below_zero(stripe_double):
    workspace = make_workspace(credits_micro_usd=0)
    payment = payment_start(
        workspace_id=workspace.pk, email="o@example.com", amount_micro_usd=TEN_DOLLARS,
        payment_method_id=card(stripe_double, workspace), save_card=False,
    ).payment  # fmt: skip
    LedgerEntry.objects.none()  # the workspace spends $7 of it

    ledger_post(
        workspace_id=workspace.pk, kind=EntryKind.ADJUSTMENT, amount_micro_usd=-7_000_000, reason="spent"
    )
    entry = payment_refund(payment=payment, amount_micro_usd=TEN_DOLLARS)
    assert entry.kind == EntryKind.REFUND and entry.amount_micro_usd == -TEN_DOLLARS
    assert account_balance(workspace_id=workspace.pk) == -7_000_000
    payment.refresh_from_db()
    assert payment.refunded_micro_usd == TEN_DOLLARS
    with pytest.raises(InvalidAmount):
        payment_refund(payment=payment, amount_micro_usd=1)  # nothing left to refund
