"""GET /api/v1/models and /api/v1/models/{slug}: the public catalog in the spec's shapes (HyperInfer's
PublicModel; OpenRouter's and Hugging Face's from the Cerebras spec), public, cacheable, open to any site."""

import datetime
import hashlib
from typing import Any

import pytest
from django.utils import timezone
from jsonschema import Draft202012Validator

from catalog.loader import catalog_load
from catalog.models import Model
from catalog.selectors import models_active
from gateway.models import Generation, GenerationStatus
from gateway.openapi import openapi_document
from tests.catalog.helpers import find_model
from tests.catalog.traffic import roll_up_and_refresh
from tests.factories import make_user, make_workspace

SDK_FIELDS = ("id", "object", "created", "owned_by", "type", "display_name", "created_at")
EXTENSIONS = (*SDK_FIELDS, "available", "kind", "dimensions")

pytestmark = pytest.mark.django_db

KIMI = "moonshotai/kimi-k2-instruct-0905"
LLAMA_70B = "meta-llama/llama-3.1-70b"
SANDBOX_PRO = "hyperinfer/sandbox-pro"
FORMATS = {"openrouter": "OpenRouterModelsResponse", "huggingface": "HuggingFaceModelsResponse"}
ONE_IN_FORMAT = {"openrouter": "OpenRouterModel", "huggingface": "HuggingFaceModel"}
# The Cerebras schemas allow any extra key, so the keys we send are pinned here.
OPENROUTER_KEYS = {
    "id",
    "hugging_face_id",
    "name",
    "created",
    "input_modalities",
    "output_modalities",
    "context_length",
    "max_output_length",
    "pricing",
    "supported_sampling_parameters",
    "supported_features",
    "description",
    "openrouter",
    "datacenters",
}
OPENROUTER_PRICING_KEYS = {
    "prompt",
    "completion",
    "request",
    "image",
    "input_cache_read",
    "input_cache_write",
}
HUGGINGFACE_KEYS = {
    *("id", "hugging_face_id", "object", "created", "owned_by", "context_length", "pricing", "capabilities"),
}
LISTING_KEYS = {"openrouter": {"data"}, "huggingface": {"object", "data"}}
ITEM_KEYS = {"openrouter": OPENROUTER_KEYS, "huggingface": HUGGINGFACE_KEYS}


def component_validator(spec: dict, name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": spec["components"]})


def listing_schema(spec: dict) -> dict:
    return spec["paths"]["/api/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


def data_of(client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def by_slug(items: list[dict], key: str = "slug") -> dict[str, dict]:
    return {item[key]: item for item in items}


def assert_error(response, status: int, param: str, *fragments: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["request_id"] and error["request_id"] == response["X-Request-Id"]
    for fragment in fragments:
        assert fragment in error["message"], error["message"]


# --- The shapes, against the specs ---------------------------------------------------------------------


def test_every_shipped_model_is_listed_as_the_specs_public_model(
    client, shipped_catalog, hyperinfer_spec, settings
):
    settings.IMAGE_GENERATION_BACKEND = ""  # none configured (test_tools_image.py checks both)
    response = client.get("/api/v1/models")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    Draft202012Validator(
        {**listing_schema(hyperinfer_spec), "components": hyperinfer_spec["components"]}
    ).validate(body)
    public_model = component_validator(hyperinfer_spec, "PublicModel")
    # The spec's fields, and the extensions our documentation marks (the SDKs' fields, availability).
    allowed = set(hyperinfer_spec["components"]["schemas"]["PublicModel"]["properties"]) | set(EXTENSIONS)
    for item in body["data"]:
        public_model.validate(item)
        assert set(item) <= allowed, item["slug"]
    assert [item["slug"] for item in body["data"]] == [model.slug for model in models_active()]
    assert len(body["data"]) == 8
    assert body["meta"] == {"image_generation_configured": False}
    ids = [item["id"] for item in body["data"]]
    assert (body["object"], body["has_more"], body["first_id"], body["last_id"]) == (
        "list",
        False,
        ids[0],
        ids[-1],
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_other_formats_are_the_cerebras_specs_listings(client, shipped_catalog, cerebras_spec, fmt):
    body = client.get(f"/api/v1/models?format={fmt}").json()
    component_validator(cerebras_spec, FORMATS[fmt]).validate(body)
    assert set(body) == LISTING_KEYS[fmt]
    assert [item["id"] for item in body["data"]] == [model.slug for model in models_active()]
    for item in body["data"]:
        assert set(item) == ITEM_KEYS[fmt], item["id"]
    if fmt == "openrouter":
        assert all(set(item["pricing"]) == OPENROUTER_PRICING_KEYS for item in body["data"])
    else:
        assert body["object"] == "list"


def test_format_default_is_the_same_as_no_format(client, shipped_catalog):
    assert client.get("/api/v1/models?format=default").content == client.get("/api/v1/models").content


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


# --- One model -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["default", *FORMATS])
def test_one_model_by_its_slashed_slug_is_its_listing_entry(client, shipped_catalog, fmt):
    key = "slug" if fmt == "default" else "id"
    listed = by_slug(data_of(client, f"/api/v1/models?format={fmt}"), key)
    for path in ("deepseek/deepseek-v4-pro", "deepseek%2Fdeepseek-v4-pro"):
        response = client.get(f"/api/v1/models/{path}?format={fmt}")
        assert response.status_code == 200
        entry = listed["deepseek/deepseek-v4-pro"]
        # The default shape also has the SDKs' model object at its top level (models.retrieve() reads it).
        top = {name: entry[name] for name in SDK_FIELDS} if fmt == "default" else {}
        assert response.json() == {"data": entry, **top}


def test_one_model_validates_against_the_specs_and_its_documentation(
    client, shipped_catalog, hyperinfer_spec, cerebras_spec
):
    component_validator(hyperinfer_spec, "PublicModel").validate(data_of(client, f"/api/v1/models/{KIMI}"))
    for fmt, name in ONE_IN_FORMAT.items():
        component_validator(cerebras_spec, name).validate(
            data_of(client, f"/api/v1/models/{KIMI}?format={fmt}")
        )
    document = openapi_document()
    responses = document["paths"]["/api/v1/models/{slug}"]["get"]["responses"]
    for status, path in (("200", f"/api/v1/models/{KIMI}"), ("default", "/api/v1/models/nobody/nothing")):
        schema = responses[status]["content"]["application/json"]["schema"]
        Draft202012Validator({**schema, "components": document["components"]}).validate(
            client.get(path).json()
        )


def test_an_unknown_slug_is_a_404_naming_it(client, shipped_catalog):
    assert_error(client.get("/api/v1/models/nobody/nothing"), 404, "slug", "'nobody/nothing'")


def test_an_inactive_model_is_not_served(client, shipped_catalog):
    assert client.get(f"/api/v1/models/{KIMI}").status_code == 200
    Model.objects.filter(slug=KIMI).update(is_active=False)
    assert_error(client.get(f"/api/v1/models/{KIMI}"), 404, "slug", KIMI)
    assert KIMI not in by_slug(data_of(client, "/api/v1/models"))


@pytest.mark.parametrize("path", ["/api/v1/models", f"/api/v1/models/{KIMI}", "/api/v1/models/nobody/x"])
@pytest.mark.parametrize("value", ["xml", "OpenRouter", ""])
def test_an_unknown_format_is_a_400_listing_the_accepted_values(client, shipped_catalog, path, value):
    response = client.get(path, {"format": value})
    assert_error(response, 400, "format", f"{value!r}", "default, openrouter, huggingface")
    assert response["Access-Control-Allow-Origin"] == "*"


# --- Public, cacheable, open to other sites ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/models", f"/api/v1/models/{KIMI}"])
def test_the_body_has_a_strong_etag_and_may_be_cached_for_a_minute(client, shipped_catalog, path):
    response = client.get(path)
    assert response["Cache-Control"] == "public, max-age=60"
    assert response["ETag"] == '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'
    assert response["Access-Control-Allow-Origin"] == "*" and response["X-Request-Id"]
    assert client.get(path)["ETag"] == response["ETag"]
    assert client.get(path, {"format": "openrouter"})["ETag"] != response["ETag"]


def test_a_signed_in_browser_gets_the_same_shareable_answer(client, shipped_catalog):
    """The API never opens the session, so no `Vary: Cookie` keeps shared caches from storing it."""
    client.force_login(make_user())
    response = client.get("/api/v1/models")
    assert response.status_code == 200
    assert "cookie" not in response.get("Vary", "").lower()
    assert "set-cookie" not in {name.lower() for name in response.headers}


@pytest.mark.parametrize("form", ["{}", "W/{}", '"other", {}', "*"])
@pytest.mark.parametrize("path", ["/api/v1/models", f"/api/v1/models/{KIMI}?format=huggingface"])
def test_a_matching_if_none_match_gets_304_without_a_body(client, shipped_catalog, path, form):
    etag = client.get(path)["ETag"]
    response = client.get(path, HTTP_IF_NONE_MATCH=form.format(etag))
    assert response.status_code == 304 and response.content == b""
    assert response["ETag"] == etag and response["Cache-Control"] == "public, max-age=60"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_the_etag_changes_when_the_catalog_does(client, shipped_catalog):
    etag = client.get("/api/v1/models")["ETag"]
    assert client.get("/api/v1/models", HTTP_IF_NONE_MATCH='"stale"').status_code == 200
    Model.objects.filter(slug=KIMI).update(name="Kimi K2 Instruct (renamed)")
    response = client.get("/api/v1/models", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200 and response["ETag"] != etag
    assert by_slug(response.json()["data"])[KIMI]["name"] == "Kimi K2 Instruct (renamed)"


@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_AUTHORIZATION": "Bearer hi-wrong"}, {"HTTP_X_API_KEY": "nope"}, {"HTTP_AUTHORIZATION": "x"}],
)
def test_no_key_is_needed_and_a_bad_one_is_ignored(client, shipped_catalog, headers):
    anonymous = client.get("/api/v1/models").content
    for path in ("/api/v1/models", f"/api/v1/models/{KIMI}"):
        response = client.get(path, **headers)
        assert response.status_code == 200, response.content
    assert client.get("/api/v1/models", **headers).content == anonymous


def test_a_method_the_catalog_does_not_serve_is_a_405_in_the_envelope(client, shipped_catalog):
    response = client.post("/api/v1/models", {})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["request_id"] == response["X-Request-Id"]


def test_an_embedding_model_says_so_and_has_its_vector_size(client, shipped_catalog):
    embed = by_slug(data_of(client, "/api/v1/models"))["hyperinfer/sandbox-embed"]
    assert (embed["kind"], embed["dimensions"], embed["features"]) == ("embedding", 256, [])
    assert (embed["max_output_tokens"], embed["pricing"]) == (0, {"prompt": 0.02, "completion": 0.0})
    openrouter = by_slug(data_of(client, "/api/v1/models?format=openrouter"), "id")
    assert openrouter["hyperinfer/sandbox-embed"]["output_modalities"] == ["embeddings"]
