"""Only the indexes no other covers (gateway/models.py): each one is written for every request served.

Drops the workspace's and the model's own indexes (the composite indexes start with them) and the request
id's `varchar_pattern_ops` copy, which `unique=True` adds on PostgreSQL and nothing queries; its uniqueness
stays, as the constraint it already was (the state now names it)."""

import django.db.models.deletion
from django.db import migrations, models

LIKE_INDEX = "gateway_generation_request_id_26d46f61_like"


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE_INDEX}")


def create_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX} ON gateway_generation (request_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0004_email_verification_and_invitations"),
        ("gateway", "0004_generation_provider_metadata"),
    ]

    operations = [
        migrations.AlterField(
            model_name="generation",
            name="model",
            field=models.CharField(max_length=200),
        ),
        migrations.AlterField(
            model_name="generation",
            name="workspace",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="generations",
                to="console.workspace",
            ),
        ),
        # The unique constraint stays in the database as it is; only the state moves it to Meta.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="generation",
                    name="request_id",
                    field=models.CharField(max_length=64),
                ),
                migrations.AddConstraint(
                    model_name="generation",
                    constraint=models.UniqueConstraint(
                        fields=("request_id",), name="gateway_generation_request_id_key"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_like_index, create_like_index)],
        ),
    ]
