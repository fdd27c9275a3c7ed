"""The public catalog's response shapes, chosen by `?format=`: ours, OpenRouter's and Hugging Face's."""

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from catalog.models import Model
from catalog.public import huggingface_model, openrouter_model, public_model, sdk_model_fields
from core.deployment import image_generation_configured


class Format(StrEnum):
    DEFAULT = "default"
    OPENROUTER = "openrouter"
    HUGGINGFACE = "huggingface"


def model_shape(model: Model, fmt: Format, volumes: dict[str, int]) -> dict[str, Any]:
    """One model in the chosen shape; `volumes` is each model's weekly token volume, by slug."""
    if fmt is Format.OPENROUTER:
        return openrouter_model(model)
    if fmt is Format.HUGGINGFACE:
        return huggingface_model(model)
    return public_model(model, weekly_token_volume=volumes.get(model.slug, 0))


def models_body(models: Iterable[Model], fmt: Format, volumes: dict[str, int]) -> dict[str, Any]:
    """The listing: `listModels` by default, else the Cerebras spec's OpenRouter / Hugging Face responses."""
    data = [model_shape(model, fmt, volumes) for model in models]
    if fmt is Format.OPENROUTER:
        return {"data": data}
    if fmt is Format.HUGGINGFACE:
        return {"object": "list", "data": data}
    return {
        "data": data,
        "meta": {"image_generation_configured": image_generation_configured()},
        # Extensions: the list envelopes of the OpenAI and Anthropic SDKs (one page holds the catalog).
        "object": "list",
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def model_body(model: Model, fmt: Format, volumes: dict[str, int]) -> dict[str, Any]:
    body = {"data": model_shape(model, fmt, volumes)}
    if fmt is Format.DEFAULT:
        # Extensions: the SDKs' `models.retrieve()` reads the model object at the top level.
        body.update(sdk_model_fields(model))
    return body
