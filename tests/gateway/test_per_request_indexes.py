"""The tables the meter's writer fills for every request (a generation, a usage debit) carry no index that
another of theirs covers: each index is written once a request (PostgreSQL's CPU and WAL a request,
docs/scaling.md). And what the dropped ones served still has an index: the request id's uniqueness, a
workspace's and a model's lookups."""

import pytest
from django.db import IntegrityError, connection, transaction

from billing.models import LedgerEntry
from gateway.models import Generation
from tests.factories import make_workspace

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

PER_REQUEST_TABLES = [Generation._meta.db_table, LedgerEntry._meta.db_table]


def _indexes(table: str) -> dict[str, tuple[list[str], str, bool, bool]]:
    """name: (columns in order, their operator classes and directions as text, unique, partial)."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        definitions = dict(cursor.fetchall())
    return {
        name: (
            info["columns"],
            definitions[name].split(" USING ")[1],
            info["unique"],
            " WHERE " in definitions[name],
        )
        for name, info in constraints.items()
        if name in definitions and not info["primary_key"]  # a unique constraint's index too
    }


@pytest.mark.parametrize("table", PER_REQUEST_TABLES)
def test_no_index_of_a_per_request_table_is_covered_by_another(table):
    indexes = _indexes(table)
    covered = []
    for name, (columns, definition, unique, partial) in indexes.items():
        if unique or partial or "pattern_ops" in definition:
            if "pattern_ops" in definition:  # serves LIKE 'prefix%' only, which nothing here asks
                covered.append(name)
            continue
        for other, (other_columns, _, _, other_partial) in indexes.items():
            if other != name and not other_partial and other_columns[: len(columns)] == columns:
                covered.append(f"{name} (by {other})")
    assert covered == []


def test_what_the_dropped_indexes_served_is_still_indexed():
    generation = _indexes(Generation._meta.db_table)
    leading = {columns[0] for columns, *_ in generation.values()}
    assert {"request_id", "workspace_id", "model", "created_at", "api_key_id"} <= leading
    assert any(columns == ["request_id"] and unique for columns, _, unique, _ in generation.values())
    ledger = _indexes(LedgerEntry._meta.db_table)
    assert "workspace_id" in {columns[0] for columns, *_ in ledger.values()}


def test_a_request_id_is_still_recorded_once():
    workspace = make_workspace()
    Generation.objects.create(request_id="req-1", workspace=workspace, model="m", status="completed")
    with pytest.raises(IntegrityError), transaction.atomic():
        Generation.objects.create(request_id="req-1", workspace=workspace, model="m", status="completed")
