"""providers.yaml validation: the shipped file is valid, and each kind of mistake is named precisely."""

from decimal import Decimal
from pathlib import Path

import pytest

from catalog.fields import CatalogError
from catalog.loader import catalog_parse
from catalog.schema import catalog_from_data
from tests.catalog.helpers import find, find_model

PRO = "deepseek/deepseek-v4-pro"


def test_shipped_catalog_parses_with_exact_decimal_prices(shipped_path: Path) -> None:
    catalog = catalog_parse(shipped_path)

    slugs = [m.slug for m in catalog.models]
    assert "meta-llama/llama-3.1-8b" in slugs
    assert {"hyperinfer/sandbox", "hyperinfer/sandbox-pro", "local/llama-cpp", PRO} <= set(slugs)
    assert {p.slug for p in catalog.providers} == {
        "cerebras",
        "fireworks",
        "baseten",
        "llamacpp",
        "anthropic",
        "mock",
    }
    pro = next(m for m in catalog.models if m.slug == "hyperinfer/sandbox-pro")
    # Decimal('0.6'), not the binary expansion of the float 0.6.
    assert (pro.prompt_price, pro.completion_price, pro.cached_prompt_price) == (
        Decimal("0.60"),
        Decimal("2.50"),
        Decimal("0.15"),
    )
    assert str(pro.prompt_price) == "0.6"


def test_every_shipped_model_is_consistent(shipped_path: Path) -> None:
    catalog = catalog_parse(shipped_path)
    creators = {c.slug for c in catalog.creators}
    for model in catalog.models:
        assert model.creator in creators
        assert model.routes, model.slug
        assert model.max_output_tokens <= model.context_length
        tiers = [b.tier for b in model.benchmarks]
        assert tiers == sorted(tiers, key=["primary", "extra"].index), model.slug


def test_llama_benchmarks_cite_the_model_card(shipped_path: Path) -> None:
    catalog = catalog_parse(shipped_path)
    llama = next(m for m in catalog.models if m.slug == "meta-llama/llama-3.1-8b")
    scores = {b.label: (b.score, b.unit) for b in llama.benchmarks}
    assert scores == {"MMLU": (69.4, "%"), "GPQA": (30.4, "%"), "HumanEval": (72.6, "pass@1")}
    assert all(b.source_url.endswith("llama3_1/MODEL_CARD.md") for b in llama.benchmarks)
    assert llama.routes[0].provider == "cerebras"
    assert llama.routes[0].upstream_model_id == "llama3.1-8b"


def test_release_date_is_parsed_from_iso_text(shipped_data: dict, write_catalog) -> None:
    catalog = catalog_parse(write_catalog(shipped_data))
    llama = next(m for m in catalog.models if m.slug == "meta-llama/llama-3.1-8b")
    assert llama.release_date.isoformat() == "2024-07-23"


def test_benchmarks_are_ordered_primary_first(shipped_data: dict, write_catalog) -> None:
    model = find_model(shipped_data, "meta-llama/llama-3.1-70b")
    model["benchmarks"].reverse()  # file now lists the extra one first
    catalog = catalog_parse(write_catalog(shipped_data))
    parsed = next(m for m in catalog.models if m.slug == "meta-llama/llama-3.1-70b")
    assert [b.tier for b in parsed.benchmarks] == ["primary", "primary", "extra"]
    assert [b.label for b in parsed.benchmarks] == ["HumanEval", "MMLU", "GPQA"]


def test_quoted_price_string_is_accepted_exactly(shipped_data: dict, write_catalog) -> None:
    find_model(shipped_data, PRO)["pricing"]["prompt"] = "0.000125"
    catalog = catalog_parse(write_catalog(shipped_data))
    assert next(m for m in catalog.models if m.slug == PRO).prompt_price == Decimal("0.000125")


def test_mock_provider_needs_no_base_url_but_others_do(shipped_data: dict) -> None:
    catalog = catalog_from_data(shipped_data, source="x.yaml")
    assert next(p for p in catalog.providers if p.slug == "mock").base_url == ""
    del next(p for p in shipped_data["providers"] if p["slug"] == "fireworks")["base_url"]
    with pytest.raises(
        CatalogError, match=r"providers\[fireworks\]\.base_url: required for kind 'fireworks'"
    ):
        catalog_from_data(shipped_data, source="x.yaml")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: find_model(d, PRO)["routes"].append({"provider": "baseten"}),
            f"models[{PRO}].routes[1].upstream_model_id: required field is missing",
        ),
        (
            lambda d: d["models"][0].update(slug="DeepSeek/V4"),
            "models[0].slug: must be 'creator/model-name' in lowercase",
        ),
        (
            lambda d: find_model(d, PRO).update(slug="acme/thing"),
            "models[acme/thing].slug: unknown creator 'acme'",
        ),
        (
            lambda d: d["models"].append(dict(find_model(d, PRO))),
            f"models[{PRO}]: duplicate slug",
        ),
        (
            lambda d: d["providers"].append(dict(find(d, "providers", "cerebras"))),
            "providers[cerebras]: duplicate slug",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(max_concurrency=0),
            "providers[cerebras].max_concurrency: must be a positive integer, got 0",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(max_concurrency=4, max_queued=-1),
            "providers[cerebras].max_queued: must be a non-negative integer, got -1",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(max_concurrency=4, queue_timeout_seconds=0),
            "providers[cerebras].queue_timeout_seconds: must be a positive integer, got 0",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(max_queued=8),
            "providers[cerebras].max_queued: only with max_concurrency",
        ),
        (
            lambda d: find_model(d, PRO).update(release_date="2025-02-30"),
            f"models[{PRO}].release_date: must be a date YYYY-MM-DD, got '2025-02-30'",
        ),
        (
            lambda d: find_model(d, PRO).update(routes=[]),
            f"models[{PRO}].routes: needs at least 1 item",
        ),
        (
            lambda d: find_model(d, PRO).update(context_length=0),
            f"models[{PRO}].context_length: must be a positive integer, got 0",
        ),
        (
            lambda d: find_model(d, PRO)["pricing"].update(completion=-0.5),
            f"models[{PRO}].pricing.completion: must be a non-negative number, got -0.5",
        ),
        (
            lambda d: find_model(d, PRO)["pricing"].update(prompt=0.0000001),
            f"models[{PRO}].pricing.prompt: must have at most 6 decimal places",
        ),
        (
            lambda d: find_model(d, PRO)["pricing"].update(prompt=True),
            f"models[{PRO}].pricing.prompt: must be a non-negative number, got True",
        ),
        (
            lambda d: find_model(d, PRO).update(features=["tools", "tools"]),
            f"models[{PRO}].features[1]: duplicate value 'tools'",
        ),
        (
            lambda d: find_model(d, PRO).update(
                benchmarks=[{"label": "X", "score": 150, "source_url": "https://x.org", "tier": "primary"}]
            ),
            f"models[{PRO}].benchmarks[0].score: a percentage must be between 0 and 100",
        ),
        (
            lambda d: find_model(d, PRO).update(
                benchmarks=[{"label": "X", "score": 50, "source_url": "example.org/x", "tier": "primary"}]
            ),
            f"models[{PRO}].benchmarks[0].source_url: must be an http(s) URL",
        ),
        (
            lambda d: find_model(d, PRO).update(
                benchmarks=[{"label": "X", "score": 50, "source_url": "https://x.org", "tier": "top"}]
            ),
            f"models[{PRO}].benchmarks[0].tier: must be one of extra, primary, got 'top'",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(kind="openai"),
            "providers[cerebras].kind: unknown kind 'openai' (known: anthropic, baseten, cerebras, "
            "fireworks, llamacpp, mock, openai_compatible)",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(base_url="api.cerebras.ai/v1"),
            "providers[cerebras].base_url: must be an http(s) URL, got 'api.cerebras.ai/v1'",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(credentials_env=""),
            "providers[cerebras].credentials_env: required for kind 'cerebras'",
        ),
        (
            lambda d: find(d, "providers", "cerebras").update(datacenter_locations=["usa"]),
            "providers[cerebras].datacenter_locations[0]: must be an ISO 3166-1 alpha-2 country code",
        ),
        (
            lambda d: find(d, "creators", "deepseek").update(brand_color="blue"),
            "creators[deepseek].brand_color: must be a hex colour like #4D6BFE, got 'blue'",
        ),
        (
            lambda d: d.update(extra=[]),
            "extra: unknown key (allowed: creators, models, providers, server_tools)",
        ),
    ],
    ids=[
        "route-missing-field",
        "slug-uppercase",
        "slug-unknown-creator",
        "duplicate-model",
        "duplicate-provider",
        "max-concurrency-zero",
        "max-queued-negative",
        "queue-timeout-zero",
        "queue-without-limit",
        "impossible-date",
        "no-routes",
        "zero-context",
        "negative-price",
        "price-too-precise",
        "price-bool",
        "duplicate-feature",
        "percentage-over-100",
        "benchmark-url",
        "benchmark-tier",
        "provider-kind",
        "provider-url",
        "provider-credentials",
        "datacenter-code",
        "brand-color",
        "top-level-key",
    ],
)
def test_mistakes_are_reported_with_entity_and_field(shipped_data: dict, mutate, expected: str) -> None:
    mutate(shipped_data)
    with pytest.raises(CatalogError) as error:
        catalog_from_data(shipped_data, source="providers.yaml")
    assert str(error.value).startswith(f"providers.yaml: {expected}")


def test_duplicate_yaml_key_is_rejected_with_its_line(write_catalog) -> None:
    path = write_catalog("creators: []\nproviders: []\ncreators: []\nmodels: []\n")
    with pytest.raises(
        CatalogError, match=r"providers\.yaml: line 3, column 1: invalid YAML: duplicate key 'creators'"
    ):
        catalog_parse(path)


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"nope\.yaml: file not found"):
        catalog_parse(tmp_path / "nope.yaml")


def test_empty_file_is_a_catalog_error(write_catalog) -> None:
    with pytest.raises(CatalogError, match=r"providers\.yaml: the file is empty"):
        catalog_parse(write_catalog(""))


EMBED = "hyperinfer/sandbox-embed"


def test_an_embedding_model_parses_with_its_dimensions_and_no_output(shipped_data: dict) -> None:
    catalog = catalog_from_data(shipped_data, source="providers.yaml")
    embed = next(model for model in catalog.models if model.slug == EMBED)
    assert (embed.kind, embed.dimensions, embed.max_output_tokens) == ("embedding", 256, 0)
    assert (embed.prompt_price, embed.completion_price, embed.features) == (Decimal("0.02"), Decimal(0), ())
    assert {model.kind for model in catalog.models if model.slug != EMBED} == {"chat"}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m.pop("dimensions"), f"models[{EMBED}].dimensions: required for an embedding model"),
        (
            lambda m: m.update(max_output_tokens=10),
            f"models[{EMBED}].max_output_tokens: an embedding model has none",
        ),
        (lambda m: m.update(features=["tools"]), f"models[{EMBED}].features: an embedding model has none"),
        (
            lambda m: m["pricing"].update(completion=1),
            f"models[{EMBED}].pricing.completion: an embedding model is priced by its input only",
        ),
        (lambda m: m.update(kind="image"), f"models[{EMBED}].kind: must be one of"),
        (lambda m: m.update(dimensions=0), f"models[{EMBED}].dimensions:"),
    ],
)
def test_an_embedding_models_mistakes_are_named(shipped_data: dict, mutate, expected: str) -> None:
    mutate(find_model(shipped_data, EMBED))
    with pytest.raises(CatalogError) as error:
        catalog_from_data(shipped_data, source="providers.yaml")
    assert str(error.value).startswith(f"providers.yaml: {expected}")


def test_a_chat_model_has_no_dimensions_and_needs_its_output_limit(shipped_data: dict) -> None:
    pro = find_model(shipped_data, "hyperinfer/sandbox-pro")
    pro["dimensions"] = 8
    with pytest.raises(CatalogError, match=r"sandbox-pro\]\.dimensions: only an embedding model"):
        catalog_from_data(shipped_data, source="providers.yaml")
    del pro["dimensions"], pro["max_output_tokens"]
    with pytest.raises(CatalogError, match=r"sandbox-pro\]\.max_output_tokens: required field is missing"):
        catalog_from_data(shipped_data, source="providers.yaml")
