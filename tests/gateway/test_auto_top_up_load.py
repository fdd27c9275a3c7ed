"""Auto top-up triggered by the gateway's own meters: 50 concurrent requests take a workspace below its
threshold, and its saved card (at localstripe, a real server) is charged exactly once."""

import asyncio
import time

import httpx
import pytest

from billing.models import EntryKind, LedgerEntry, PaymentStatus
from billing.payments import auto_top_up_configure
from billing.selectors import account_balance
from gateway.models import Generation
from tests.console.test_auto_top_up import TEN_DOLLARS, top_ups, with_saved_card


@pytest.mark.postgres
def test_fifty_concurrent_requests_below_the_threshold_make_exactly_one_charge(
    gateway_url, funded_key, stripe_double
):
    """The gateway's meters queue the top-up after each settlement; the saved card is charged once."""
    workspace, key = funded_key  # $5
    with_saved_card(stripe_double, workspace)
    threshold = 4_999_000  # a few requests' worth below the starting balance
    auto_top_up_configure(
        workspace_id=workspace.pk, enabled=True, threshold_micro_usd=threshold, amount_micro_usd=TEN_DOLLARS
    )

    async def load() -> list[int]:
        body = {"model": "hyperinfer/sandbox-pro", "messages": [{"role": "user", "content": "count"}]}
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.post("/api/v1/chat/completions", json=body, headers=headers) for _ in range(50))
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(load()) == [200] * 50
    for _ in range(300):  # the records and the top-up land just after the answers
        if Generation.objects.filter(workspace=workspace).count() == 50 and top_ups(workspace):
            break
        time.sleep(0.05)
    time.sleep(0.5)  # a second charge, were one coming, would be here by now
    [payment] = top_ups(workspace)
    assert payment.status == PaymentStatus.SUCCEEDED
    spent = sum(g.cost_micro_usd for g in Generation.objects.filter(workspace=workspace))
    assert spent > 5_000_000 - threshold  # the requests did cross the threshold
    assert account_balance(workspace_id=workspace.pk) == 5_000_000 - spent + TEN_DOLLARS
    purchases = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.PURCHASE)
    assert [entry.reference for entry in purchases] == [payment.payment_intent_id]
