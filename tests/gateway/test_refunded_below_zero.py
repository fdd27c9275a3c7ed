"""A refund may take a balance below zero (design §4): the next request is refused with
insufficient_credits, and the credits are not edited by hand."""

import httpx

from billing.models import EntryKind
from billing.payments import payment_sync
from billing.refunds import payment_refund
from billing.selectors import account_balance
from billing.services import ledger_post
from tests.console.test_stripe_webhooks import paid_at_stripe


def test_after_a_refund_below_zero_new_requests_are_refused(gateway_url, funded_key, stripe_double):
    workspace, key = funded_key  # $5 granted
    payment = payment_sync(paid_at_stripe(stripe_double, workspace))  # + $10
    ledger_post(
        workspace_id=workspace.pk, kind=EntryKind.ADJUSTMENT, amount_micro_usd=-14_000_000, reason="spent"
    )
    payment_refund(payment=payment, amount_micro_usd=10_000_000)
    assert account_balance(workspace_id=workspace.pk) == -9_000_000
    body = {"model": "hyperinfer/sandbox-pro", "messages": [{"role": "user", "content": "Hi"}]}
    answer = httpx.post(
        f"{gateway_url}/api/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 402 and answer.json()["error"]["code"] == "insufficient_credits"
