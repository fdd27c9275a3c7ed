"""Catalog reads used by the console and the gateway."""

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from catalog.loader import catalog_load
from catalog.models import Model, Provider
from catalog.selectors import model_get, model_slugs, models_active

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(shipped_path: Path) -> None:
    catalog_load(shipped_path)
    Model.objects.filter(slug="local/llama-cpp").update(is_active=False)


def test_model_slugs_lists_active_models_only(loaded: None) -> None:
    slugs = model_slugs()
    assert "hyperinfer/sandbox" in slugs
    assert "local/llama-cpp" not in slugs
    assert len(slugs) == 7


def test_model_get_returns_active_model_with_routes_loaded(loaded: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(3):  # model + creator, routes, providers
        model = model_get("meta-llama/llama-3.1-8b")
        routes = [(r.provider.kind, r.upstream_model_id) for r in model.routes.all()]
        assert model.creator.name == "Meta"
    assert routes == [("cerebras", "llama3.1-8b")]


def test_model_get_hides_inactive_and_unknown_models(loaded: None) -> None:
    assert model_get("local/llama-cpp") is None
    assert model_get("nobody/nothing") is None


def test_models_active_follows_position(loaded: None) -> None:
    Model.objects.filter(slug="hyperinfer/sandbox").update(position=0)
    Model.objects.filter(slug="deepseek/deepseek-v4-pro").update(position=99)
    slugs = [m.slug for m in models_active()]
    assert slugs[0] == "hyperinfer/sandbox"
    assert slugs[-1] == "deepseek/deepseek-v4-pro"
    assert "local/llama-cpp" not in slugs


def refusal(**fields: object) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as error:
        Provider(slug="x", name="X", **fields).full_clean()
    return error.value.message_dict


def test_a_provider_is_validated_against_its_registered_dialect() -> None:
    # The kinds and what each needs come from the gateway's adapters (catalog.dialects), so the model's
    # clean() checks them (the admin runs it), not a database constraint.
    assert refusal(kind="fireworks", credentials_env="X_KEY") == {
        "base_url": ["Required for kind 'fireworks'."]
    }
    assert refusal(kind="cerebras", base_url="https://api.cerebras.ai/v1") == {
        "credentials_env": ["Required for kind 'cerebras'."]
    }
    [unknown] = refusal(kind="fireworkz", base_url="https://x.org", credentials_env="K")["kind"]
    assert unknown.startswith("Unknown kind 'fireworkz' (known: anthropic, baseten, cerebras, ")
    Provider(slug="m", name="M", kind="mock").full_clean()  # needs neither
    Provider(slug="l", name="L", kind="llamacpp", base_url="http://127.0.0.1:1337/v1").full_clean()


def test_a_provider_queue_needs_its_concurrency_limit() -> None:
    # Requests queue for a provider's slots (ADR 0029): a queue without a limit would be ignored silently.
    assert refusal(kind="mock", max_queued=5) == {
        "max_queued": ["Only with max concurrency: requests queue for the provider's slots."]
    }
    Provider(slug="m", name="M", kind="mock", max_concurrency=2, max_queued=5).full_clean()


def test_database_refuses_a_queue_without_a_limit() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Provider.objects.create(slug="q", name="Q", kind="mock", max_queued=5)


def test_database_refuses_output_above_context(loaded: None) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Model.objects.filter(slug="hyperinfer/sandbox").update(max_output_tokens=10**6)
