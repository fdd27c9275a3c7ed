"""A settlement is one typed value with one serialisation: the gateway and its journal settle the same."""

import dataclasses
import json
import uuid
from decimal import Decimal

import pytest

from billing.models import EntryKind, LedgerEntry
from catalog.models import Model as CatalogModel
from core.encoding import compact_json
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
    # The workspace id's text (and the caller's own JSON) are made again from the id, not carried in it.
    assert {"workspace_text", "settlement_json"}.isdisjoint(settlement.to_json()["caller"])
    assert "settlement_json" not in settlement.to_json()["model"]
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


@pytest.mark.django_db
def test_the_journal_header_is_the_settlement_as_it_always_was_written(shipped_catalog):
    """The header is spliced from the caller's and the model's JSON, made once each: the bytes are the
    ones the dict of the settlement's fields gave (a journal written before reads the same), whatever the
    free-text end user holds."""
    catalog_cache.invalidate()  # a test above dropped the model from the cached catalog
    model = catalog_cache.get("hyperinfer/sandbox-pro")
    cached_price = model.cached_prompt_price
    settlement = dataclasses.replace(
        a_settlement(uuid.uuid4(), model), end_user='a "quoted"\nname \u00e9\u2028 \\ \U0001f600'
    )
    caller = settlement.caller
    as_a_dict = {
        "request_id": settlement.request_id,
        "caller": {
            "workspace_id": str(caller.workspace_id),
            "workspace_locked": caller.workspace_locked,
            "api_key_id": caller.api_key_id,
            "allowed_models": [],
            "rate_limit_rpm": caller.rate_limit_rpm,
            "source": caller.source,
            "limit_micro_usd": caller.limit_micro_usd,
            "limit_reset": caller.limit_reset,
        },
        "model": {
            "slug": model.slug,
            "context_length": model.context_length,
            "max_output_tokens": model.max_output_tokens,
            "prompt_price": str(model.prompt_price),
            "completion_price": str(model.completion_price),
            "cached_prompt_price": None if cached_price is None else str(cached_price),
        },
        "ingress_format": "responses",
        "streamed": True,
        "end_user": settlement.end_user,
    }
    assert settlement.header() == json.dumps(as_a_dict, ensure_ascii=False, separators=(",", ":")).encode()
    unstreamed = dataclasses.replace(settlement, streamed=False, end_user=None)
    assert json.loads(unstreamed.header())["streamed"] is False
    assert json.loads(unstreamed.header())["end_user"] is None


def test_an_outcome_is_written_with_its_fields_by_orjson_or_the_standard_library():
    """The journal writes an outcome dataclass as it is: orjson in C, or, for what orjson refuses (an
    integer past 64 bits a provider reported), the standard library, with the same fields in order."""
    outcome = Outcome(
        status="completed",
        usage=Usage(3, 4, provider_metadata={"cerebras": {"time_info": {"n": 1}}}),
        provider="mock",
        tool_costs={"web_search": 5},
    )
    long_one = dataclasses.replace(
        outcome, usage=dataclasses.replace(outcome.usage, provider_metadata={"cerebras": {"n": 2**70}})
    )
    fast, slow = compact_json(outcome), compact_json(long_one)
    expected = {field.name: getattr(outcome, field.name) for field in dataclasses.fields(Outcome)} | {
        "usage": {field.name: getattr(outcome.usage, field.name) for field in dataclasses.fields(Usage)}
    }
    assert json.loads(fast) == expected
    read_back = json.loads(slow)
    assert list(read_back) == list(expected) and list(read_back["usage"]) == list(expected["usage"])
    assert read_back["usage"]["provider_metadata"] == {"cerebras": {"n": 2**70}}
    assert Settlement.outcome_json(long_one)["usage"]["provider_metadata"]["cerebras"]["n"] == 2**70
