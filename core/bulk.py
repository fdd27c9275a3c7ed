"""Many new rows of one model, written by PostgreSQL's COPY: the metering writer's batches (design §4).

Django's bulk_create builds a model instance per row and prepares every value through the ORM's compiler;
for the writer's batches that was most of its CPU (bench/README.md). COPY takes the rows as plain tuples
in one statement, adapted by psycopg in C. Rows are dicts of attribute names (`workspace_id`, not
`workspace`); a field left out takes its model default, as in `Model(**row)`. Errors are Django's
(IntegrityError, DataError), as bulk_create's are. Other databases (the embedded SQLite) use bulk_create.
"""

import functools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, models

from core.encoding import compact_json


@dataclass(frozen=True, slots=True)
class _Columns:
    """A model's columns as COPY takes them, worked out once per model (they were, per value)."""

    names: str  # the quoted column list
    attnames: tuple[str, ...]
    # A row's values in column order, in one call in C; KeyError for a row that leaves a column out.
    read_all: Callable[[dict[str, Any]], Any]
    defaults: tuple[Callable[[], Any], ...]  # each field's get_default, for a row that leaves it out
    json_positions: tuple[int, ...]  # the JSONFields, written as JSON text (jsonb parses it)


@functools.cache
def _columns(model: type[models.Model]) -> _Columns:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    return _Columns(
        names=", ".join(connection.ops.quote_name(field.column or field.attname) for field in fields),
        attnames=tuple(field.attname for field in fields),
        read_all=_reader(tuple(field.attname for field in fields)),
        defaults=tuple(field.get_default for field in fields),
        json_positions=tuple(i for i, field in enumerate(fields) if isinstance(field, models.JSONField)),
    )


def _reader(attnames: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    if len(attnames) == 1:  # itemgetter of one name returns the value itself, not a tuple
        one = operator.itemgetter(attnames[0])
        return lambda row: (one(row),)
    return operator.itemgetter(*attnames)


def _values(columns: _Columns, row: dict[str, Any]) -> list[Any]:
    try:  # a row with every column (the writer's are): one call in C
        values = list(columns.read_all(row))
    except KeyError:
        values = [
            row[attname] if attname in row else default()
            for attname, default in zip(columns.attnames, columns.defaults, strict=True)
        ]
    for position in columns.json_positions:
        value = values[position]
        if value is not None:  # None is SQL NULL, as Django writes it
            values[position] = compact_json(value).decode()
    return values


def copy_rows(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> int:
    """Insert the rows (within the caller's transaction, if any); returns how many."""
    batch = list(rows)
    if not batch:
        return 0
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create([model(**row) for row in batch])
        return len(batch)
    columns = _columns(model)
    table = connection.ops.quote_name(model._meta.db_table or "")
    connection.ensure_connection()
    with (
        connection.wrap_database_errors,
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns.names}) FROM STDIN") as copy,
    ):
        for row in batch:
            copy.write_row(_values(columns, row))
    return len(batch)
