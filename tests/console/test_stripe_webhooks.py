"""Stripe's webhook at /stripe/webhook/: signed deliveries only, each event applied once whatever the number
or order of deliveries (design §4, invariant 5). Events come from localstripe (a real server) where it emits
them, and are built from its objects where it does not (refunds, disputes)."""

import threading
import time
import uuid

import httpx
import pytest

from billing import stripe_api
from billing.models import EntryKind, LedgerEntry, Payment, StripeEvent
from billing.payments import card_setup_start, stripe_customer_for
from billing.selectors import account_balance
from console.models import Workspace
from console.tasks import process_stripe_event
from tests.factories import make_workspace
from tests.stripe_double import card_set_up, signed, stripe_events

WEBHOOK = "/stripe/webhook/"
TEN_DOLLARS = 10_000_000


def paid_at_stripe(url: str, workspace: Workspace, cents: int = 1_000) -> dict:
    """A payment that succeeded at Stripe and was never reported back by the browser: only the webhook
    tells us. The PaymentIntent, with its charge."""
    customer = stripe_customer_for(workspace_id=workspace.pk, email="o@example.com")
    setup = card_set_up(
        url, card_setup_start(workspace_id=workspace.pk, email="o@example.com"), "4242424242424242"
    )
    return stripe_api.payment_intent_confirm_new(
        amount_cents=cents, customer_id=customer.customer_id, payment_method_id=setup["payment_method"],
        metadata={"workspace_id": str(workspace.pk), "kind": "purchase"}, idempotency_key=uuid.uuid4().hex,
    )  # fmt: skip


def succeeded_event(url: str, intent: dict) -> dict:
    [event] = [
        e for e in stripe_events(url, "payment_intent.succeeded") if e["data"]["object"]["id"] == intent["id"]
    ]
    return event


def made_event(kind: str, obj: dict) -> dict:
    """An event as Stripe shapes it, for the kinds localstripe does not emit."""
    event_id, now = f"evt_{uuid.uuid4().hex[:24]}", int(time.time())
    return {"id": event_id, "object": "event", "type": kind, "created": now, "api_version": "2024-06-20",
            "livemode": False, "data": {"object": obj}}  # fmt: skip


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """Deliver a signed event as Stripe does; the task it queues runs as the view's transaction commits."""

    def post(event: dict, **signing) -> int:
        body, signature = signed(event, **signing)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
            )
        return response.status_code

    return post


def purchases(workspace) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.PURCHASE))


@pytest.mark.django_db
def test_a_payment_only_the_webhook_reports_is_credited_once_however_often_it_comes(deliver, stripe_double):
    workspace = make_workspace()
    intent = paid_at_stripe(stripe_double, workspace)
    event = succeeded_event(stripe_double, intent)
    assert [deliver(event) for _ in range(3)] == [200, 200, 200]
    assert [(e.amount_micro_usd, e.reference) for e in purchases(workspace)] == [(TEN_DOLLARS, intent["id"])]
    assert account_balance(workspace_id=workspace.pk) == TEN_DOLLARS
    assert StripeEvent.objects.filter(event_id=event["id"]).count() == 1
    assert Payment.objects.get(payment_intent_id=intent["id"]).status == "succeeded"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "forgery",
    [
        {"secret": "whsec_someone_else"},
        {"at": int(time.time()) - 3600},  # an old delivery replayed: outside Stripe's 5-minute tolerance
    ],
    ids=["wrong-secret", "replayed-an-hour-later"],
)
def test_a_forged_or_replayed_delivery_is_refused_and_changes_nothing(
    client, deliver, stripe_double, forgery
):
    workspace = make_workspace()
    event = succeeded_event(stripe_double, paid_at_stripe(stripe_double, workspace))
    assert deliver(event, **forgery) == 400
    assert client.post(WEBHOOK, b"{}", content_type="application/json").status_code == 400  # unsigned
    assert not StripeEvent.objects.exists()
    assert account_balance(workspace_id=workspace.pk) == 0 and not Payment.objects.exists()


@pytest.mark.django_db
def test_a_refund_and_its_payment_in_either_order_end_at_the_same_balance(deliver, stripe_double):
    finals = []
    for refund_first in (False, True):
        workspace = make_workspace()
        intent = paid_at_stripe(stripe_double, workspace)
        stripe_api.refund_create(
            payment_intent_id=intent["id"], amount_cents=300, idempotency_key=uuid.uuid4().hex
        )
        charge = httpx.get(f"{stripe_double}/v1/charges/{intent['latest_charge']['id']}",
                           auth=("sk_test_localstripe", "")).json()  # fmt: skip
        events = [succeeded_event(stripe_double, intent), made_event("charge.refunded", charge)]
        for event in reversed(events) if refund_first else events:
            assert deliver(event) == 200
        finals.append(account_balance(workspace_id=workspace.pk))
        payment = Payment.objects.get(payment_intent_id=intent["id"])
        assert (payment.amount_micro_usd, payment.refunded_micro_usd) == (TEN_DOLLARS, 3_000_000)
    assert finals == [7_000_000, 7_000_000]


@pytest.mark.django_db
def test_a_dispute_locks_the_workspace_with_a_reason(deliver, stripe_double):
    workspace = make_workspace()
    intent = paid_at_stripe(stripe_double, workspace)
    charge, reason = intent["latest_charge"]["id"], "fraudulent"
    dispute = {"id": "dp_test_1", "object": "dispute", "amount": 1000, "charge": charge,
               "payment_intent": intent["id"], "reason": reason, "status": "needs_response"}  # fmt: skip
    assert deliver(made_event("charge.dispute.created", dispute)) == 200
    workspace.refresh_from_db()
    assert workspace.is_locked and "disputed (fraudulent)" in workspace.locked_reason


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_20_times_at_once_is_credited_once(live_server, stripe_double, worker):
    """20 concurrent deliveries to a real server, applied by a real Celery worker."""
    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = False  # this test's worker applies them
    workspace = make_workspace()
    intent = paid_at_stripe(stripe_double, workspace)
    body, signature = signed(succeeded_event(stripe_double, intent))
    statuses: list[int] = []

    def post() -> None:
        headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
        statuses.append(
            httpx.post(live_server.url + WEBHOOK, content=body, headers=headers, timeout=30).status_code
        )

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    deadline = time.monotonic() + 60
    while not purchases(workspace):
        assert worker.poll() is None and time.monotonic() < deadline, "the worker never applied the event"
        time.sleep(0.1)
    time.sleep(1)  # anything else queued would have been applied by now
    assert [e.amount_micro_usd for e in purchases(workspace)] == [TEN_DOLLARS]
    assert StripeEvent.objects.count() == 1 and StripeEvent.objects.get().processed_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_different_events_of_one_payment_applied_at_once_credit_it_once(stripe_double):
    """Stripe may send several events about one payment; applied concurrently, the ledger credits it once."""
    from django.db import connection

    workspace = make_workspace()
    intent = paid_at_stripe(stripe_double, workspace)
    original = succeeded_event(stripe_double, intent)
    events = [{**original, "id": f"evt_copy_{n}"} for n in range(20)]
    for event in events:
        StripeEvent.objects.create(event_id=event["id"], type=event["type"], payload=event)
    errors: list[BaseException] = []

    def apply(event_id: str) -> None:
        try:
            process_stripe_event(event_id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=apply, args=(event["id"],)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [e.amount_micro_usd for e in purchases(workspace)] == [TEN_DOLLARS]
    assert account_balance(workspace_id=workspace.pk) == TEN_DOLLARS
    assert not StripeEvent.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db
def test_an_operator_refunds_a_payment_from_admin_through_stripe(admin_client, stripe_double):
    from billing.payments import payment_sync

    workspace = make_workspace()
    payment = payment_sync(paid_at_stripe(stripe_double, workspace))
    url = "/admin/billing/payment/"
    form = {"action": "refund_payments", "_selected_action": [str(payment.pk)]}
    assert "Refund" in admin_client.post(url, form).content.decode()  # the confirmation step
    admin_client.post(url, {**form, "apply": "1", "amount_usd": "4"})
    refund = LedgerEntry.objects.get(workspace=workspace, kind=EntryKind.REFUND)
    assert refund.amount_micro_usd == -4_000_000 and refund.reference.startswith("re_")
    assert refund.created_by is not None  # the operator, by name
    admin_client.post(url, {**form, "apply": "1", "amount_usd": ""})  # the rest
    payment.refresh_from_db()
    assert payment.refunded_micro_usd == TEN_DOLLARS
    assert account_balance(workspace_id=workspace.pk) == 0
    charge = httpx.get(
        f"{stripe_double}/v1/charges/{payment.charge_id}", auth=("sk_test_localstripe", "")
    ).json()
    assert charge["amount_refunded"] == 1_000  # Stripe refunded the card, in cents
