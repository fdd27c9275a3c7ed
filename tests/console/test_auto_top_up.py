"""Auto top-up against localstripe (a real server): a workspace that spends below its threshold under
concurrent requests is charged once and restored; a declined card turns it off and the owners are told;
a low-balance e-mail goes out once per crossing. Every test ends with the ledger audit."""

import threading

import pytest
from django.core import mail

from billing.errors import InvalidAmount
from billing.models import EntryKind, Payment, PaymentKind, PaymentStatus, StripeCustomer
from billing.payments import (
    TopUp,
    auto_top_up_configure,
    auto_top_up_run,
    card_save,
    card_setup_start,
    stripe_customer_for,
)
from billing.selectors import account_balance
from billing.services import ledger_post
from console.tasks import auto_top_up
from tests.factories import make_workspace
from tests.stripe_double import card_set_up

TEN_DOLLARS = 10_000_000


def with_saved_card(url: str, workspace, number: str = "4242424242424242") -> StripeCustomer:
    customer = stripe_customer_for(workspace_id=workspace.pk, email="owner@example.com")
    setup = card_set_up(url, card_setup_start(workspace_id=workspace.pk, email="owner@example.com"), number)
    card_save(customer=customer, payment_method_id=setup["payment_method"], brand="visa", last4=number[-4:])
    return customer


def top_ups(workspace) -> list[Payment]:
    return list(Payment.objects.filter(workspace=workspace, kind=PaymentKind.AUTO_TOP_UP))


@pytest.mark.django_db
def test_turning_it_on_needs_a_saved_card_and_an_amount_a_card_may_buy(stripe_double):
    workspace = make_workspace()
    stripe_customer_for(workspace_id=workspace.pk, email="owner@example.com")
    with pytest.raises(InvalidAmount, match="payment_method: save a card first"):
        auto_top_up_configure(
            workspace_id=workspace.pk, enabled=True, threshold_micro_usd=1, amount_micro_usd=TEN_DOLLARS
        )
    with_saved_card(stripe_double, workspace)
    with pytest.raises(InvalidAmount, match="amount: between"):
        auto_top_up_configure(
            workspace_id=workspace.pk, enabled=True, threshold_micro_usd=1, amount_micro_usd=1
        )
    customer = auto_top_up_configure(
        workspace_id=workspace.pk, enabled=True, threshold_micro_usd=2_000_000, amount_micro_usd=TEN_DOLLARS
    )
    assert customer.auto_top_up and customer.auto_top_up_threshold_micro_usd == 2_000_000


@pytest.mark.django_db
def test_below_the_threshold_the_saved_card_is_charged_once(stripe_double):
    workspace = make_workspace(credits_micro_usd=1_000_000)
    with_saved_card(stripe_double, workspace)
    auto_top_up_configure(
        workspace_id=workspace.pk, enabled=True, threshold_micro_usd=2_000_000, amount_micro_usd=TEN_DOLLARS
    )
    assert auto_top_up_run(workspace_id=workspace.pk) == TopUp.CHARGED
    assert auto_top_up_run(workspace_id=workspace.pk) == TopUp.NOT_NEEDED  # restored: $11 ≥ $2
    [payment] = top_ups(workspace)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.amount_micro_usd == TEN_DOLLARS
    assert account_balance(workspace_id=workspace.pk) == 11_000_000


@pytest.mark.django_db
def test_a_declined_card_turns_it_off_and_tells_the_owners(stripe_double):
    workspace = make_workspace(credits_micro_usd=1_000_000)
    with_saved_card(stripe_double, workspace, "4000000000000341")  # saved fine, declined when charged
    auto_top_up_configure(
        workspace_id=workspace.pk, enabled=True, threshold_micro_usd=2_000_000, amount_micro_usd=TEN_DOLLARS
    )
    assert auto_top_up(str(workspace.pk)) == TopUp.DECLINED
    assert not StripeCustomer.objects.get(workspace=workspace).auto_top_up
    assert account_balance(workspace_id=workspace.pk) == 1_000_000
    subjects = [message.subject for message in mail.outbox]
    assert "Auto top-up failed: your card was declined" in subjects
    owner = workspace.memberships.get(role="owner").user.email
    assert all(message.to == [owner] for message in mail.outbox)
    assert auto_top_up(str(workspace.pk)) == TopUp.NOT_NEEDED  # off now: no second charge attempt


@pytest.mark.django_db
def test_a_low_balance_email_goes_out_once_per_crossing(stripe_double):
    workspace = make_workspace(credits_micro_usd=1_000_000)
    with_saved_card(stripe_double, workspace)  # threshold $5 by default, auto top-up off

    def low_balance_mails() -> int:
        return sum(message.subject == "Your HyperInfer balance is low" for message in mail.outbox)

    auto_top_up(str(workspace.pk))
    auto_top_up(str(workspace.pk))
    assert low_balance_mails() == 1
    ledger_post(workspace_id=workspace.pk, kind=EntryKind.GRANT, amount_micro_usd=TEN_DOLLARS, reason="t")
    auto_top_up(str(workspace.pk))  # above again: re-armed, nothing sent
    assert low_balance_mails() == 1
    ledger_post(workspace_id=workspace.pk, kind=EntryKind.ADJUSTMENT, amount_micro_usd=-9_000_000, reason="t")
    auto_top_up(str(workspace.pk))
    assert low_balance_mails() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_make_one_charge(stripe_double):
    """However many settlements trigger it at once, the workspace's row lock lets one charge through."""
    from django.db import connection

    workspace = make_workspace(credits_micro_usd=1_000_000)
    with_saved_card(stripe_double, workspace)
    auto_top_up_configure(
        workspace_id=workspace.pk, enabled=True, threshold_micro_usd=2_000_000, amount_micro_usd=TEN_DOLLARS
    )
    outcomes: list[TopUp | BaseException] = []

    def trigger() -> None:
        try:
            outcomes.append(auto_top_up_run(workspace_id=workspace.pk))
        except BaseException as exc:  # reported below
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, outcomes)) == sorted([TopUp.CHARGED] + [TopUp.NOT_NEEDED] * 9)
    assert len(top_ups(workspace)) == 1
    assert account_balance(workspace_id=workspace.pk) == 11_000_000


@pytest.mark.django_db
def test_the_owner_sets_it_on_the_add_credits_page(client, stripe_double):
    workspace = make_workspace(credits_micro_usd=1_000_000)
    owner = workspace.memberships.get(role="owner").user
    client.force_login(owner)
    page = client.get("/billing/add/").content.decode()
    assert "Pay once with “Save this card” checked" in page  # no saved card yet
    with_saved_card(stripe_double, workspace)
    assert "•••• 4242" in client.get("/billing/add/").content.decode()
    answer = client.post(
        "/billing/auto-top-up/", {"enabled": "on", "threshold": "3", "amount": "20"}, follow=True
    )
    assert "Auto top-up is on." in answer.content.decode()
    customer = StripeCustomer.objects.get(workspace=workspace)
    assert (
        customer.auto_top_up,
        customer.auto_top_up_threshold_micro_usd,
        customer.auto_top_up_amount_micro_usd,
    ) == (
        True,
        3_000_000,
        20_000_000,
    )
    refused = client.post(
        "/billing/auto-top-up/", {"enabled": "on", "threshold": "3", "amount": "2"}, follow=True
    )
    assert "amount: between $5 and $1,000" in refused.content.decode()
