"""Many new rows of one model, written by PostgreSQL's COPY: the metering writer's batches (design §4).

Django's bulk_create builds a model instance per row and prepares every value through the ORM's compiler;
for the writer's batches that was most of its CPU (bench/README.md). COPY takes the rows as plain tuples
in one statement, adapted by psycopg in C. Rows are dicts of attribute names (`workspace_id`, not
`workspace`); a field left out takes its model default, as in `Model(**row)`. Errors are Django's
(IntegrityError, DataError), as bulk_create's are. Other databases (the embedded SQLite) use bulk_create.
"""

from collections.abc import Iterable
from typing import Any

from django.db import connection, models
from psycopg.types.json import Jsonb


def _columns(model: type[models.Model]) -> list["models.Field[Any, Any]"]:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def _value(field: "models.Field[Any, Any]", row: dict[str, Any]) -> Any:
    value = row[field.attname] if field.attname in row else field.get_default()
    if isinstance(field, models.JSONField) and value is not None:
        return Jsonb(value)
    return value


def copy_rows(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> int:
    """Insert the rows (within the caller's transaction, if any); returns how many."""
    batch = list(rows)
    if not batch:
        return 0
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create([model(**row) for row in batch])
        return len(batch)
    fields = _columns(model)
    names = ", ".join(connection.ops.quote_name(field.column or field.attname) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table or "")
    connection.ensure_connection()
    with (
        connection.wrap_database_errors,
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
    ):
        for row in batch:
            copy.write_row([_value(field, row) for field in fields])
    return len(batch)
