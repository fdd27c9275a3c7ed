"""Moving the key spend counters from console.ApiKey to billing.KeySpend keeps every figure."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("billing", "0001_initial"), ("console", "0002_apikey_verbose_name")]
AFTER = [("billing", "0002_key_spend"), ("console", "0003_apikey_spend_moves_to_billing")]


@pytest.mark.django_db(transaction=True)
def test_each_keys_counters_move_to_its_key_spend_row():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    workspace = old.get_model("console", "Workspace").objects.create(name="w", slug="w")
    period = timezone.now().replace(microsecond=0)
    ApiKey = old.get_model("console", "ApiKey")
    spent = ApiKey.objects.create(
        workspace=workspace,
        name="spent",
        prefix="hi-a",
        secret_hash="a" * 64,
        limit_micro_usd=5_000,
        limit_reset="daily",
        limit_period_start=period,
        limit_used_micro_usd=1_200,
        limit_reserved_micro_usd=300,
        usage_micro_usd=9_900,
    )
    fresh = ApiKey.objects.create(workspace=workspace, name="fresh", prefix="hi-b", secret_hash="b" * 64)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    KeySpend = new.get_model("billing", "KeySpend")
    moved = KeySpend.objects.get(api_key_id=spent.pk)
    assert (moved.period_start, moved.used_micro_usd, moved.reserved_micro_usd, moved.lifetime_micro_usd) == (
        period,
        1_200,
        300,
        9_900,
    )
    assert KeySpend.objects.filter(api_key_id=fresh.pk, lifetime_micro_usd=0, used_micro_usd=0).exists()
    assert new.get_model("console", "ApiKey").objects.get(pk=spent.pk).limit_micro_usd == 5_000

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # leave the database as the other tests expect
