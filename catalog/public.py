"""The public catalog's shapes: HyperInfer's `PublicModel` (spec 004), and the OpenRouter and Hugging Face
listings of the Cerebras public-models API (spec 000), each built from one catalog `Model` row.

Prices in the catalog are USD per 1M tokens. `PublicModel` and Hugging Face carry them as numbers per 1M;
OpenRouter carries USD per token as decimal strings ("0.0000006"), exact, never a float's rounding.
"""

import datetime
from decimal import Decimal
from typing import Any

from catalog.models import Model

PER_TOKEN = Decimal(1_000_000)
# What the gateway accepts for every model, whatever its routes (docs/translation.md).
SAMPLING_PARAMETERS = ("temperature", "top_p", "stop", "max_tokens")


def _price(value: Decimal | None) -> float | int | None:
    """A catalog price as a JSON number: an integer when whole, else a float (exact for these decimals)."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _per_token(value: Decimal) -> str:
    """USD per 1M tokens as USD per token, in plain decimal notation."""
    text = format((value / PER_TOKEN).normalize(), "f")
    return text if text != "-0" else "0"


def datacenter_locations(model: Model) -> list[str]:
    """The country codes of the providers on the model's routes, in route order, each once."""
    seen: list[str] = []
    for route in model.routes.all():
        seen += [code for code in route.provider.datacenter_locations if code not in seen]
    return seen


def _created(model: Model) -> int:
    """Unix seconds: the release date (00:00 UTC), else when the catalog first listed the model."""
    if model.release_date:
        midnight = datetime.datetime.combine(model.release_date, datetime.time(), tzinfo=datetime.UTC)
        return int(midnight.timestamp())
    return int(model.created_at.timestamp())


def sdk_model_fields(model: Model) -> dict[str, Any]:
    """What the official SDKs' model objects read, as extensions of PublicModel: OpenAI's `id`, `object`,
    `created` and `owned_by`, Anthropic's `type`, `display_name` and `created_at` (the slug is the id)."""
    created = _created(model)
    return {
        "id": model.slug,
        "object": "model",
        "created": created,
        "owned_by": model.creator.slug,
        "type": "model",
        "display_name": model.name,
        "created_at": datetime.datetime.fromtimestamp(created, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def benchmarks_in_order(model: Model) -> list[dict[str, Any]]:
    """Primary benchmarks first, then extra, each tier in stored order. The loader stores them so, but the
    admin edits the JSON as it likes, and the spec promises this order."""
    return sorted(model.benchmarks, key=lambda benchmark: benchmark.get("tier") != "primary")


def public_model(model: Model, *, weekly_token_volume: int) -> dict[str, Any]:
    """The spec's `PublicModel`."""
    creator = model.creator
    provider = {"slug": creator.slug, "name": creator.name}
    if creator.brand_color:
        provider["brand_color"] = creator.brand_color
    pricing = {"prompt": _price(model.prompt_price), "completion": _price(model.completion_price)}
    if model.cached_prompt_price is not None:
        pricing["cached_prompt"] = _price(model.cached_prompt_price)
    data: dict[str, Any] = {
        "slug": model.slug,
        "name": model.name,
        "provider": provider,
        "description": model.description,
        "release_date": model.release_date.isoformat() if model.release_date else "",
        "context_length": model.context_length,
        "max_output_tokens": model.max_output_tokens,
        "pricing": pricing,
        "features": list(model.features),
        "datacenter_locations": datacenter_locations(model),
    }
    if model.hugging_face_id:
        data["hugging_face_id"] = model.hugging_face_id
    data["benchmarks"] = benchmarks_in_order(model)
    data["weekly_token_volume"] = weekly_token_volume
    # Extensions: whether this deployment can serve it (a provider's key is set, or one needs none), and
    # what it does (an embedding model serves POST /api/v1/embeddings, with vectors of `dimensions`).
    data |= {**sdk_model_fields(model), "available": model.is_available, "kind": model.kind}
    if model.dimensions:
        data["dimensions"] = model.dimensions
    return data


def input_modalities(model: Model) -> list[str]:
    return ["text", "image"] if "vision" in model.features else ["text"]


def supported_sampling_parameters(model: Model) -> list[str]:
    extra = []
    if "tools" in model.features:
        extra += ["tools", "tool_choice", "parallel_tool_calls"]
    if "json_mode" in model.features:
        extra += ["response_format", "structured_outputs"]
    if "reasoning" in model.features:
        extra += ["reasoning", "include_reasoning"]
    return [*SAMPLING_PARAMETERS, *extra]


def openrouter_model(model: Model) -> dict[str, Any]:
    """The Cerebras spec's `OpenRouterModel`."""
    cached = model.cached_prompt_price if model.cached_prompt_price is not None else model.prompt_price
    pricing = {
        "prompt": _per_token(model.prompt_price),
        "completion": _per_token(model.completion_price),
        "request": "0",
        "image": "0",
        "input_cache_read": _per_token(cached) if "prompt_caching" in model.features else "0",
        "input_cache_write": "0",
    }
    return {
        "id": model.slug,
        "hugging_face_id": model.hugging_face_id,
        "name": model.name,
        "created": _created(model),
        "input_modalities": input_modalities(model),
        "output_modalities": ["embeddings"] if model.kind == "embedding" else ["text"],
        "context_length": model.context_length,
        "max_output_length": model.max_output_tokens,
        "pricing": pricing,
        "supported_sampling_parameters": supported_sampling_parameters(model),
        "supported_features": list(model.features),
        "description": model.description,
        "openrouter": {"slug": model.slug},
        "datacenters": [{"country_code": code} for code in datacenter_locations(model)],
    }


def huggingface_model(model: Model) -> dict[str, Any]:
    """The Cerebras spec's `HuggingFaceModel`: per-million pricing and capabilities."""
    features = set(model.features)
    return {
        "id": model.slug,
        "hugging_face_id": model.hugging_face_id or None,
        "object": "model",
        "created": _created(model),
        "owned_by": model.creator.slug,
        "context_length": model.context_length,
        "pricing": {"input": _price(model.prompt_price), "output": _price(model.completion_price)},
        "capabilities": {
            "streaming": "streaming" in features,
            "function_calling": "tools" in features,
            "structured_outputs": "json_mode" in features,
            "vision": "vision" in features,
        },
    }
