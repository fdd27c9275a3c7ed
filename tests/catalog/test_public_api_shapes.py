"""GET /api/v1/models and /api/v1/models/{slug} in the spec's shapes: the listing and one model validate
against HyperInfer's PublicModel (and the API's documentation) and the Cerebras spec's OpenRouter and Hugging
Face schemas, with exactly the keys pinned here; one model is found by its slashed slug and is its listing
entry; an unknown slug, an inactive model or an unknown format is refused in the error envelope."""

import pytest
from jsonschema import Draft202012Validator

from catalog.models import Model
from catalog.selectors import models_active
from gateway.openapi import openapi_document
from tests.catalog.public_api_helpers import KIMI, by_slug, data_of

SDK_FIELDS = ("id", "object", "created", "owned_by", "type", "display_name", "created_at")
EXTENSIONS = (*SDK_FIELDS, "available", "kind", "dimensions")

pytestmark = pytest.mark.django_db

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
