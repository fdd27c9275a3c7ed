"""A settlement is one typed value with one serialisation: the gateway and its journal settle the same."""

import dataclasses
import json
import uuid
from decimal import Decimal

import pytest

from billing.models import EntryKind, LedgerEntry
from catalog.models import Model as CatalogModel
from gateway.audit import ledger_audit
from gateway.canonical import Usage
from gateway.catalog_cache import catalog_cache
from gateway.metering import Outcome, Settlement, sql
from gateway.metering.base import charge_for
from gateway.models import Generation
from tests.factories import key_less_caller, make_workspace


def a_settlement(workspace_id: uuid.UUID, model) -> Settlement:
    caller = key_less_caller(workspace_id, source="chat")
    outcome = Outcome(
        status="completed",
        usage=Usage(prompt_tokens=12, completion_tokens=30, reasoning_tokens=4, cached_prompt_tokens=2),
        provider="mock",
        finish_reason="stop",
        latency_ms=40,
        ttft_ms=9,
    )
    return Settlement(
        request_id=uuid.uuid4().hex,
        caller=caller,
        model=model,
        ingress_format="responses",
        streamed=True,
        end_user="user-7",
        outcome=outcome,
    )


def admitted_settlement() -> Settlement:
    """A funded workspace's request to the priced sandbox, reserved by the SQL meter, not yet settled."""
    workspace = make_workspace(credits_micro_usd=1_000_000)
    model = catalog_cache.get("hyperinfer/sandbox-pro")
    assert model is not None
    settlement = a_settlement(workspace.id, model)
    sql.reserve_sync(
        caller=settlement.caller,
        model=model,
        request_id=settlement.request_id,
        prompt_tokens=12,
        max_tokens=50,
    )
    return settlement


@pytest.mark.django_db
def test_a_settlement_survives_its_json_unchanged(shipped_catalog):
    model = catalog_cache.get("hyperinfer/sandbox-pro")
    settlement = a_settlement(uuid.uuid4(), model)
    restored = Settlement.from_json(json.loads(json.dumps(settlement.to_json())))
    # The model comes back with what billing needs of it (routing is not a settlement's business).
    assert restored == dataclasses.replace(
        settlement, model=dataclasses.replace(model, features=frozenset(), routes=())
    )
    assert restored.model.prompt_price == model.prompt_price and charge_for(restored) == charge_for(
        settlement
    )
    # The workspace id's text is made again from the id, not carried in the JSON.
    assert "workspace_text" not in settlement.to_json()["caller"]
    assert restored.caller.workspace_text == str(settlement.caller.workspace_id)


@pytest.mark.django_db
def test_a_settlement_drops_the_keys_allowlist_which_billing_does_not_need(shipped_catalog):
    model = catalog_cache.get("hyperinfer/sandbox-pro")
    settlement = a_settlement(uuid.uuid4(), model)
    with_allowlist = dataclasses.replace(
        settlement, caller=dataclasses.replace(settlement.caller, allowed_models=frozenset({"x/y"}))
    )
    assert with_allowlist.to_json() == settlement.to_json()


@pytest.mark.django_db
def test_a_settlement_replayed_from_its_json_bills_once_however_often_it_runs(shipped_catalog, settings):
    settings.GATEWAY_METER = "sql"
    settlement = admitted_settlement()
    payload = json.loads(json.dumps(settlement.to_json()))
    sql.settle_sync(Settlement.from_json(payload))
    sql.settle_sync(Settlement.from_json(payload))

    cost = charge_for(settlement)
    assert cost > 0
    debits = LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference=settlement.request_id)
    assert [entry.amount_micro_usd for entry in debits] == [-cost]
    generation = Generation.objects.get(request_id=settlement.request_id)
    assert (generation.ingress_format, generation.source, generation.streamed, generation.end_user) == (
        "responses",
        "chat",
        True,
        "user-7",
    )
    assert (generation.tokens_completion, generation.cost_micro_usd) == (30, cost)
    assert ledger_audit() == []


@pytest.mark.django_db
def test_a_later_settlement_bills_the_prices_the_request_was_admitted_with(shipped_catalog, settings):
    """The client was shown a cost; settling after the catalog changed or dropped the model bills it."""
    settings.GATEWAY_METER = "sql"
    settlement = admitted_settlement()
    model = settlement.model
    payload = json.loads(json.dumps(settlement.to_json()))
    CatalogModel.objects.filter(slug=model.slug).update(prompt_price=Decimal("99"), is_active=False)
    catalog_cache.invalidate()
    assert catalog_cache.get(model.slug) is None

    sql.settle_sync(Settlement.from_json(payload))

    assert Generation.objects.get(request_id=settlement.request_id).cost_micro_usd == charge_for(settlement)
