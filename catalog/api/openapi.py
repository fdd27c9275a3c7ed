"""The catalog API's OpenAPI documentation (drf-spectacular; gateway/openapi/ serves it in /openapi.json).

`listModels` is the spec's operation verbatim, plus the `format` query parameter, marked as our extension,
and the shapes it selects: `cerebras_shapes.json` holds the Cerebras spec's OpenRouter and Hugging Face
schemas, extracted once from it, inlined here (the served document's components are the HyperInfer spec's).
"""

import copy
import json
from pathlib import Path
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from catalog.api.formats import Format
from catalog.constants import MODEL_KINDS

PUBLIC_MODEL = {"$ref": "#/components/schemas/PublicModel"}

# The spec's 200 body of GET /api/v1/models, documented verbatim.
MODELS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {"type": "array", "items": PUBLIC_MODEL},
        "meta": {
            "type": "object",
            "description": "Deployment capabilities (not per-model).",
            "required": ["image_generation_configured"],
            "properties": {
                "image_generation_configured": {
                    "type": "boolean",
                    "description": "Whether the chat `image` server tool has a real provider configured "
                    "(009-R74).",
                }
            },
        },
    },
}
_CEREBRAS_SHAPES: dict[str, Any] = json.loads((Path(__file__).with_name("cerebras_shapes.json")).read_text())


def cerebras_shape(name: str) -> dict[str, Any]:
    """A schema of the Cerebras spec, its references to its siblings inlined."""

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                return inline(copy.deepcopy(_CEREBRAS_SHAPES[ref.rsplit("/", 1)[1]]))
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(_CEREBRAS_SHAPES[name])


def _extension(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "x-hyperinfer-extension": True}


# What the official SDKs read of a model object, as extensions (catalog.public.sdk_model_fields).
_SDK_MODEL_FIELDS = {
    "id": {"type": "string", "description": "The slug again: the id the OpenAI and Anthropic SDKs read."},
    "object": {"type": "string", "const": "model", "description": "OpenAI's model object type."},
    "created": {
        "type": "integer",
        "description": "Unix seconds: the release date, else when the catalog first listed the model.",
    },
    "owned_by": {"type": "string", "description": "The creator's slug (OpenAI's `owned_by`)."},
    "type": {"type": "string", "const": "model", "description": "Anthropic's model object type."},
    "display_name": {"type": "string", "description": "The model's name (Anthropic's `display_name`)."},
    "created_at": {
        "type": "string",
        "format": "date-time",
        "description": "`created` in RFC 3339 (Anthropic's `created_at`).",
    },
}
_SDK_MODEL_PROPERTIES = {name: _extension(schema) for name, schema in _SDK_MODEL_FIELDS.items()}
_AVAILABLE = _extension(
    {
        "type": "boolean",
        "description": "Whether this deployment can serve the model: at least one of its providers has its "
        "credentials set (or needs none). An unavailable model answers `provider_unavailable`.",
    }
)
_KIND = {
    "kind": _extension(
        {
            "type": "string",
            "enum": list(MODEL_KINDS),
            "description": "What the model does: `chat` answers in every ingress format; `embedding` serves "
            "POST /api/v1/embeddings only.",
        }
    ),
    "dimensions": _extension(
        {"type": "integer", "description": "An embedding model's vector size (absent for chat models)."}
    ),
}
PUBLIC_MODEL_FOR_SDKS = {
    "allOf": [
        PUBLIC_MODEL,
        _extension(
            {
                "type": "object",
                "description": "What the OpenAI and Anthropic SDKs read of a model object, whether "
                "this deployment can serve the model, and what kind of model it is.",
                "properties": {**_SDK_MODEL_PROPERTIES, "available": _AVAILABLE, **_KIND},
            }
        ),
    ]
}
# The spec's listing plus, as extensions, the list envelopes the OpenAI and Anthropic SDKs read.
_LIST_EXTENSIONS: dict[str, dict[str, Any]] = {
    "object": {"type": "string", "const": "list", "description": "OpenAI's list object type."},
    "has_more": {
        "type": "boolean",
        "const": False,
        "description": "Anthropic's pagination: one page holds the whole catalog.",
    },
    "first_id": {"type": ["string", "null"], "description": "The first model's id (Anthropic's pagination)."},
    "last_id": {"type": ["string", "null"], "description": "The last model's id (Anthropic's pagination)."},
}
MODELS_WITH_SDK_ENVELOPE = {
    **MODELS_RESPONSE,
    "properties": {
        **MODELS_RESPONSE["properties"],
        "data": {"type": "array", "items": PUBLIC_MODEL_FOR_SDKS},
        **{name: _extension(schema) for name, schema in _LIST_EXTENSIONS.items()},
    },
}
# One body per `format`: anyOf (an empty list fits every shape); the spec's own is the first.
LISTING_RESPONSE = {
    "anyOf": [
        MODELS_WITH_SDK_ENVELOPE,
        _extension(cerebras_shape("OpenRouterModelsResponse")),
        _extension(cerebras_shape("HuggingFaceModelsResponse")),
    ]
}
# getModel's default shape also carries the model object at its top level: `models.retrieve()` reads it there.
MODEL_RESPONSE = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                PUBLIC_MODEL_FOR_SDKS,
                _extension(cerebras_shape("OpenRouterModel")),
                _extension(cerebras_shape("HuggingFaceModel")),
            ]
        },
        **_SDK_MODEL_PROPERTIES,
    },
}

FORMAT_PARAMETER = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=[value.value for value in Format],
    default=Format.DEFAULT.value,
    description="Output shape. `default`: PublicModel. `openrouter` and `huggingface`: the shapes of the "
    "Cerebras public models API (`OpenRouterModelsResponse` / `OpenRouterModel`, with USD-per-token price "
    "strings, and `HuggingFaceModelsResponse` / `HuggingFaceModel`, with USD-per-1M prices); one model is "
    "`{data: <model>}` in every shape. Any other value is refused: 400 `invalid_request`, param `format`.",
    extensions={"x-hyperinfer-extension": True},
)
SLUG_PARAMETER = OpenApiParameter(
    "slug",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The model's slug, slash included, e.g. `deepseek/deepseek-v4-pro`.",
)

ERROR_RESPONSE = OpenApiResponse(
    response={"$ref": "#/components/schemas/OpenAIError"},
    description="Error in the OpenAI envelope with the stable taxonomy `code` (002-R7): 404 "
    "`invalid_request` for a slug not in the catalog, 400 `invalid_request` for an unknown `format`.",
)
FORMAT_ERROR_RESPONSE = OpenApiResponse(
    response={"$ref": "#/components/schemas/OpenAIError"},
    description="An unknown `format`: `invalid_request`, param `format`, in the OpenAI envelope (002-R7).",
)


class PublicSchema(AutoSchema):
    """No authentication: `security: []`, which drf-spectacular leaves out when a view has none."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is not None:
            operation["security"] = []
        return operation
