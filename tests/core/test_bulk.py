"""core/bulk.py: rows written by COPY read back as bulk_create's would, and fail with Django's errors."""

import uuid

import pytest
from django.db import DataError, IntegrityError, transaction

from billing.models import EntryKind, LedgerEntry
from core.bulk import copy_rows
from gateway.models import Generation
from tests.factories import make_workspace

# Rows written alone, not as the writer pairs them (a generation with its debit): the audit would object.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db, pytest.mark.ledger_unbalanced]


def generation_row(workspace_id: uuid.UUID, **fields) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "workspace_id": workspace_id,
        "api_key_id": None,
        "ingress_format": "chat_completions",
        "model": "test/copied",
        "status": "completed",
        "tokens_prompt": 12,
        "cost_micro_usd": 345,
        "provider_metadata": {"cerebras": {"time_info": {"total_time": 0.25}}},
        **fields,
    }


def test_copied_rows_read_back_with_every_value_and_the_models_defaults():
    workspace = make_workspace()
    rows = [generation_row(workspace.id), generation_row(workspace.id, ttft_ms=None, end_user="ü-user")]

    assert copy_rows(Generation, rows) == 2

    first, second = (Generation.objects.get(request_id=row["request_id"]) for row in rows)
    assert (first.workspace_id, first.tokens_prompt, first.cost_micro_usd) == (workspace.id, 12, 345)
    assert first.provider_metadata == {"cerebras": {"time_info": {"total_time": 0.25}}}  # jsonb, not text
    # Left out: the model's defaults, as Generation(**row) would have them.
    assert (first.tokens_completion, first.streamed, first.tool_costs_micro_usd, first.source) == (
        0,
        False,
        {},
        "api",
    )
    assert first.created_at is not None and first.finished_at is None
    assert second.end_user == "ü-user" and second.ttft_ms is None


def test_a_choice_enum_is_written_as_its_value():
    workspace = make_workspace()
    row = {
        "workspace_id": workspace.id,
        "kind": EntryKind.USAGE.value,
        "amount_micro_usd": -5,
        "balance_after_micro_usd": 95,
        "reference": "copied",
        "metadata": {"model": "test/copied"},
    }
    copy_rows(LedgerEntry, [row])
    entry = LedgerEntry.objects.get(reference="copied")
    assert entry.kind == EntryKind.USAGE and entry.metadata == {"model": "test/copied"}


def test_a_duplicate_is_djangos_integrity_error_and_writes_nothing():
    workspace = make_workspace()
    row = generation_row(workspace.id)
    copy_rows(Generation, [row])
    with pytest.raises(IntegrityError), transaction.atomic():
        copy_rows(Generation, [generation_row(workspace.id), row])
    assert Generation.objects.filter(workspace=workspace).count() == 1


def test_a_value_too_long_is_djangos_data_error():
    workspace = make_workspace()
    with pytest.raises(DataError), transaction.atomic():
        copy_rows(Generation, [generation_row(workspace.id, model="m" * 500)])
    assert not Generation.objects.filter(workspace=workspace).exists()


def test_no_rows_is_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert copy_rows(Generation, []) == 0


def test_json_is_written_as_the_standard_library_reads_it_back():
    """orjson writes the JSON; what it refuses (an integer past 64 bits) the standard library does."""
    workspace = make_workspace()
    metadata = {"model": "test/ü", "huge": 2**70, "nested": [1, {"a": None}]}
    row = {**generation_row(workspace.id), "provider_metadata": metadata}
    copy_rows(Generation, [row])
    generation = Generation.objects.get(request_id=row["request_id"])
    assert generation.provider_metadata == metadata


def test_whole_rows_and_partial_rows_in_one_batch_each_read_back_as_given():
    """A row with every column is read in one call; one that leaves columns out, beside it, still gets the
    model's defaults for them."""
    workspace = make_workspace()
    whole = {
        field.attname: None for field in Generation._meta.concrete_fields if not field.primary_key
    } | generation_row(
        workspace.id,
        source="chat",
        provider="mock",
        upstream_model_id="up",
        streamed=True,
        tokens_completion=7,
        tokens_reasoning=2,
        tokens_cached_prompt=1,
        tool_costs_micro_usd={"web_search": 3},
        latency_ms=40,
        ttft_ms=9,
        finish_reason="stop",
        error_code="",
        error_detail="",
        end_user="u",
        created_at="2026-12-05T10:00:00.123456+00:00",  # text, as the writer hands the record's times over
        finished_at="2026-12-05T10:00:00.163456+00:00",
    )
    partial = generation_row(workspace.id)

    assert copy_rows(Generation, [whole, partial, dict(whole, request_id=uuid.uuid4().hex)]) == 3

    written = Generation.objects.get(request_id=whole["request_id"])
    assert (written.source, written.streamed, written.tokens_completion, written.ttft_ms) == (
        "chat",
        True,
        7,
        9,
    )
    assert written.tool_costs_micro_usd == {"web_search": 3}
    assert written.created_at.isoformat() == "2026-12-05T10:00:00.123456+00:00"
    assert (written.finished_at - written.created_at).total_seconds() == 0.04
    defaulted = Generation.objects.get(request_id=partial["request_id"])
    assert (defaulted.source, defaulted.streamed, defaulted.finished_at) == ("api", False, None)
