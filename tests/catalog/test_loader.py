"""catalog_load syncs providers.yaml into the database: upsert by slug, never delete, idempotent."""

from decimal import Decimal
from pathlib import Path

import pytest

from catalog.fields import CatalogError
from catalog.loader import catalog_load, catalog_parse
from catalog.models import Creator, Model, Provider, Route
from tests.catalog.helpers import find, find_model

pytestmark = pytest.mark.django_db

SANDBOX_PRO = "hyperinfer/sandbox-pro"


def test_shipped_catalog_loads_everything(shipped_path: Path) -> None:
    result = catalog_load(shipped_path)

    catalog = catalog_parse(shipped_path)
    assert (result.models.created, result.providers.created, result.creators.created) == (8, 6, 5)
    assert list(Model.objects.values_list("slug", flat=True)) == [m.slug for m in catalog.models]
    assert Route.objects.count() == sum(len(m.routes) for m in catalog.models)
    pro = Model.objects.get(slug=SANDBOX_PRO)
    assert pro.creator.slug == "hyperinfer"
    assert (pro.prompt_price, pro.completion_price, pro.cached_prompt_price) == (
        Decimal("0.6"),
        Decimal("2.5"),
        Decimal("0.15"),
    )
    route = pro.routes.get()
    assert (route.provider.slug, route.upstream_model_id, route.position) == ("mock", "sandbox-pro", 0)
    assert route.options == {"tokens_per_second": 60, "first_token_ms": 150}
    llama = Model.objects.get(slug="meta-llama/llama-3.1-8b")
    assert llama.release_date.isoformat() == "2024-07-23"
    assert llama.benchmarks[0] == {
        "label": "MMLU",
        "score": 69.4,
        "unit": "%",
        "source_url": "https://github.com/meta-llama/llama-models/blob/main/models/llama3_1/MODEL_CARD.md",
        "tier": "primary",
    }
    cerebras = Provider.objects.get(slug="cerebras")
    assert (cerebras.kind, cerebras.base_url, cerebras.credentials_env) == (
        "cerebras",
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
    )
    assert Provider.objects.get(slug="mock").base_url == ""
    assert Creator.objects.get(slug="deepseek").brand_color == "#4D6BFE"


def test_second_load_changes_nothing(shipped_path: Path) -> None:
    catalog_load(shipped_path)
    before = {m.slug: m.updated_at for m in Model.objects.all()}
    route_ids = set(Route.objects.values_list("pk", flat=True))

    again = catalog_load(shipped_path)

    assert (again.models.created, again.models.updated, again.models.unchanged) == (0, 0, 8)
    assert (again.providers.created, again.providers.updated) == (0, 0)
    assert (again.creators.created, again.creators.updated) == (0, 0)
    assert again.deactivated == []
    assert {m.slug: m.updated_at for m in Model.objects.all()} == before
    assert set(Route.objects.values_list("pk", flat=True)) == route_ids  # routes were not rewritten


def test_model_removed_from_file_is_deactivated_not_deleted(write_catalog, shipped_data: dict) -> None:
    catalog_load(write_catalog(shipped_data))
    shipped_data["models"] = [m for m in shipped_data["models"] if m["slug"] != SANDBOX_PRO]

    result = catalog_load(write_catalog(shipped_data))

    assert result.deactivated == [SANDBOX_PRO]
    gone = Model.objects.get(slug=SANDBOX_PRO)
    assert gone.is_active is False
    assert gone.routes.count() == 1  # kept, so history stays explainable
    assert Model.objects.filter(is_active=True).count() == 7


def test_model_back_in_the_file_is_reactivated(write_catalog, shipped_data: dict) -> None:
    full = write_catalog(shipped_data)
    catalog_load(full)
    Model.objects.filter(slug=SANDBOX_PRO).update(is_active=False)

    result = catalog_load(full)

    assert result.models.updated == 1
    assert Model.objects.get(slug=SANDBOX_PRO).is_active is True


def test_changed_fields_and_routes_are_updated(write_catalog, shipped_data: dict) -> None:
    catalog_load(write_catalog(shipped_data))
    model = find_model(shipped_data, "meta-llama/llama-3.1-8b")
    model["pricing"]["prompt"] = 0.12
    model["routes"].append(
        {"provider": "fireworks", "upstream_model_id": "accounts/fireworks/models/llama-v3p1-8b"}
    )
    find(shipped_data, "providers", "cerebras")["timeout_seconds"] = 30
    find(shipped_data, "providers", "cerebras").update(max_concurrency=4, max_queued=16)

    result = catalog_load(write_catalog(shipped_data))

    assert (result.models.updated, result.providers.updated) == (1, 1)
    llama = Model.objects.get(slug="meta-llama/llama-3.1-8b")
    assert llama.prompt_price == Decimal("0.12")
    assert [(r.position, r.provider.slug) for r in llama.routes.order_by("position")] == [
        (0, "cerebras"),
        (1, "fireworks"),
    ]
    cerebras = Provider.objects.get(slug="cerebras")
    assert (cerebras.timeout_seconds, cerebras.max_concurrency, cerebras.max_queued) == (30, 4, 16)
    assert cerebras.queue_timeout_seconds == 10  # the default


def test_route_order_change_rewrites_routes(write_catalog, shipped_data: dict) -> None:
    model = find_model(shipped_data, SANDBOX_PRO)
    model["routes"].append({"provider": "llamacpp", "upstream_model_id": "local-model"})
    catalog_load(write_catalog(shipped_data))
    model["routes"].reverse()

    result = catalog_load(write_catalog(shipped_data))

    assert result.models.updated == 1
    routes = Model.objects.get(slug=SANDBOX_PRO).routes.order_by("position")
    assert [r.provider.slug for r in routes] == ["llamacpp", "mock"]


def test_file_order_sets_position(write_catalog, shipped_data: dict) -> None:
    shipped_data["models"].reverse()
    catalog_load(write_catalog(shipped_data))
    assert list(Model.objects.order_by("position").values_list("slug", flat=True)) == [
        m["slug"] for m in shipped_data["models"]
    ]


def test_invalid_file_leaves_the_database_untouched(write_catalog, shipped_data: dict) -> None:
    catalog_load(write_catalog(shipped_data))
    find_model(shipped_data, SANDBOX_PRO)["pricing"]["prompt"] = 99
    find_model(shipped_data, "local/llama-cpp")["routes"][0]["provider"] = "nope"

    with pytest.raises(CatalogError):
        catalog_load(write_catalog(shipped_data))

    assert Model.objects.get(slug=SANDBOX_PRO).prompt_price == Decimal("0.6")
