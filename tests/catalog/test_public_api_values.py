"""The exact values of the public catalog (GET /api/v1/models and /api/v1/models/{slug}) in every shape:
prices, dates, modalities and capabilities, benchmarks in their order, the weekly token volume, an embedding
model's kind and vector size; and the few queries a listing takes whatever the number of models."""

import datetime

import pytest
from django.utils import timezone

from catalog.loader import catalog_load
from catalog.models import Model
from gateway.models import Generation, GenerationStatus
from tests.catalog.helpers import find_model
from tests.catalog.public_api_helpers import KIMI, by_slug, data_of
from tests.catalog.traffic import roll_up_and_refresh
from tests.factories import make_workspace

pytestmark = pytest.mark.django_db

LLAMA_70B = "meta-llama/llama-3.1-70b"
SANDBOX_PRO = "hyperinfer/sandbox-pro"


# --- Exact values -----------------------------------------------------------------------------------------


def test_a_model_in_every_shape_has_exact_prices_dates_and_capabilities(
    client, shipped_catalog, shipped_data
):
    description = find_model(shipped_data, KIMI)["description"]
    released = int(datetime.datetime(2025, 9, 5, tzinfo=datetime.UTC).timestamp())
    assert by_slug(data_of(client, "/api/v1/models"))[KIMI] == {
        "slug": KIMI,
        "name": "Kimi K2 Instruct 0905",
        "provider": {"slug": "moonshotai", "name": "Moonshot AI", "brand_color": "#16191E"},
        "description": description,
        "release_date": "2025-09-05",
        "context_length": 262144,
        "max_output_tokens": 16384,
        "pricing": {"prompt": 0.6, "completion": 2.5},
        "features": ["tools", "json_mode", "streaming"],
        "datacenter_locations": ["US"],
        "hugging_face_id": "moonshotai/Kimi-K2-Instruct-0905",
        "benchmarks": [],
        "weekly_token_volume": 0,
        # The SDKs' model fields (extensions): the slug as id, the release date as created.
        "id": KIMI,
        "object": "model",
        "created": released,
        "owned_by": "moonshotai",
        "type": "model",
        "display_name": "Kimi K2 Instruct 0905",
        "created_at": "2025-09-05T00:00:00Z",
        "available": False,  # no Cerebras or Fireworks key on this machine
        "kind": "chat",
    }
    assert by_slug(data_of(client, "/api/v1/models?format=openrouter"), "id")[KIMI] == {
        "id": KIMI,
        "hugging_face_id": "moonshotai/Kimi-K2-Instruct-0905",
        "name": "Kimi K2 Instruct 0905",
        "created": released,
        "input_modalities": ["text"],
        "output_modalities": ["text"],
        "context_length": 262144,
        "max_output_length": 16384,
        "pricing": {
            "prompt": "0.0000006",
            "completion": "0.0000025",
            "request": "0",
            "image": "0",
            "input_cache_read": "0",
            "input_cache_write": "0",
        },
        "supported_sampling_parameters": [
            *("temperature", "top_p", "stop", "max_tokens"),
            *("tools", "tool_choice", "parallel_tool_calls", "response_format", "structured_outputs"),
        ],
        "supported_features": ["tools", "json_mode", "streaming"],
        "description": description,
        "openrouter": {"slug": KIMI},
        "datacenters": [{"country_code": "US"}],
    }
    assert by_slug(data_of(client, "/api/v1/models?format=huggingface"), "id")[KIMI] == {
        "id": KIMI,
        "hugging_face_id": "moonshotai/Kimi-K2-Instruct-0905",
        "object": "model",
        "created": released,
        "owned_by": "moonshotai",
        "context_length": 262144,
        "pricing": {"input": 0.6, "output": 2.5},
        "capabilities": {
            "streaming": True,
            "function_calling": True,
            "structured_outputs": True,
            "vision": False,
        },
    }


def test_a_model_without_release_date_or_hugging_face_id_with_a_cached_price(client, shipped_catalog):
    listed = Model.objects.get(slug=SANDBOX_PRO).created_at
    public = data_of(client, f"/api/v1/models/{SANDBOX_PRO}")
    assert public["release_date"] == "" and "hugging_face_id" not in public
    assert public["pricing"] == {"prompt": 0.6, "completion": 2.5, "cached_prompt": 0.15}
    openrouter = data_of(client, f"/api/v1/models/{SANDBOX_PRO}?format=openrouter")
    assert openrouter["created"] == int(listed.timestamp()) and openrouter["hugging_face_id"] == ""
    assert openrouter["pricing"]["input_cache_read"] == "0.00000015"
    assert openrouter["datacenters"] == []
    assert "reasoning" in openrouter["supported_sampling_parameters"]
    huggingface = data_of(client, f"/api/v1/models/{SANDBOX_PRO}?format=huggingface")
    assert huggingface["hugging_face_id"] is None and huggingface["created"] == int(listed.timestamp())


def test_a_vision_model_takes_images_in_every_shape(client, shipped_data, write_catalog):
    find_model(shipped_data, KIMI)["features"].append("vision")
    catalog_load(write_catalog(shipped_data))
    assert "vision" in data_of(client, f"/api/v1/models/{KIMI}")["features"]
    assert data_of(client, f"/api/v1/models/{KIMI}?format=openrouter")["input_modalities"] == [
        "text",
        "image",
    ]
    assert data_of(client, f"/api/v1/models/{KIMI}?format=huggingface")["capabilities"]["vision"] is True


def test_benchmarks_list_primary_then_extra(client, shipped_data, write_catalog):
    benchmarks = find_model(shipped_data, LLAMA_70B)["benchmarks"]
    benchmarks.insert(0, benchmarks.pop())  # the extra one first in the file
    catalog_load(write_catalog(shipped_data))
    listed = data_of(client, f"/api/v1/models/{LLAMA_70B}")["benchmarks"]
    assert [(b["label"], b["tier"]) for b in listed] == [
        ("MMLU", "primary"),
        ("HumanEval", "primary"),
        ("GPQA", "extra"),
    ]
    assert listed[0] == {
        "label": "MMLU",
        "score": 83.6,
        "unit": "%",
        "source_url": "https://github.com/meta-llama/llama-models/blob/main/models/llama3_1/MODEL_CARD.md",
        "tier": "primary",
    }
    assert data_of(client, "/api/v1/models/deepseek/deepseek-v4-pro")["benchmarks"] == []


def test_benchmarks_stored_out_of_order_by_the_admin_still_list_primary_first(client, shipped_catalog):
    model = Model.objects.get(slug=LLAMA_70B)
    model.benchmarks = [*model.benchmarks[2:], *model.benchmarks[:2]]  # extra, primary, primary
    model.save()
    listed = data_of(client, f"/api/v1/models/{LLAMA_70B}")["benchmarks"]
    assert [b["label"] for b in listed] == ["MMLU", "HumanEval", "GPQA"]


def test_the_weekly_token_volume_sums_completed_requests_of_the_last_seven_days(client, shipped_catalog):
    assert {item["weekly_token_volume"] for item in data_of(client, "/api/v1/models")} == {0}
    workspace = make_workspace()
    now = timezone.now()

    def record(model: str, ago: datetime.timedelta, prompt: int, completion: int, status: str) -> None:
        Generation.objects.create(
            request_id=f"r{Generation.objects.count()}",
            workspace=workspace,
            ingress_format="chat_completions",
            model=model,
            status=status,
            tokens_prompt=prompt,
            tokens_completion=completion,
            created_at=now - ago,
        )

    completed, failed = GenerationStatus.COMPLETED, GenerationStatus.FAILED
    record(KIMI, datetime.timedelta(hours=1), 10, 5, completed)
    record(KIMI, datetime.timedelta(days=6, hours=23), 100, 0, completed)
    record(KIMI, datetime.timedelta(hours=2), 500, 500, failed)
    record(KIMI, datetime.timedelta(days=7, hours=1), 1000, 0, completed)  # too old
    record(LLAMA_70B, datetime.timedelta(minutes=5), 1, 1, completed)
    assert {item["weekly_token_volume"] for item in data_of(client, "/api/v1/models")} == {0}
    roll_up_and_refresh()  # as beat does every minute: rollups, then figures
    volumes = {
        slug: item["weekly_token_volume"] for slug, item in by_slug(data_of(client, "/api/v1/models")).items()
    }
    assert volumes[KIMI] == 115 and volumes[LLAMA_70B] == 2
    assert {volume for slug, volume in volumes.items() if slug not in (KIMI, LLAMA_70B)} == {0}
    assert data_of(client, f"/api/v1/models/{KIMI}")["weekly_token_volume"] == 115


def test_the_listing_takes_the_same_few_queries_whatever_the_number_of_models(
    client, shipped_catalog, django_assert_max_num_queries
):
    with django_assert_max_num_queries(4):  # models + creators, routes, providers, weekly volumes
        assert len(data_of(client, "/api/v1/models")) == 8


def test_an_embedding_model_says_so_and_has_its_vector_size(client, shipped_catalog):
    embed = by_slug(data_of(client, "/api/v1/models"))["hyperinfer/sandbox-embed"]
    assert (embed["kind"], embed["dimensions"], embed["features"]) == ("embedding", 256, [])
    assert (embed["max_output_tokens"], embed["pricing"]) == (0, {"prompt": 0.02, "completion": 0.0})
    openrouter = by_slug(data_of(client, "/api/v1/models?format=openrouter"), "id")
    assert openrouter["hyperinfer/sandbox-embed"]["output_modalities"] == ["embeddings"]
