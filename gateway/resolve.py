"""Which catalog model a request names, and whether its caller may use it here: one rule for every gateway
endpoint (the ingress formats, embeddings, token counting, the tokenizer). Raises ApiError."""

from core.errors import ApiError, ErrorCode
from gateway.auth import Caller
from gateway.catalog_cache import ModelInfo, catalog_cache

# Where each kind of model is served, for the message that points a caller at the right endpoint.
_ENDPOINTS = {"chat": "/api/v1/chat/completions", "embedding": "/api/v1/embeddings"}


def resolved_model(caller: Caller, slug: str) -> ModelInfo:
    """The model `slug` names, if the caller's key may use it. May query the database (a stale cache)."""
    model = catalog_cache.get(slug)
    if model is None:
        # No not-found code in the taxonomy: invalid_request with 404, as OpenAI answers an unknown model.
        raise ApiError(ErrorCode.INVALID_REQUEST, f"model: unknown model {slug!r}", param="model", status=404)
    if caller.allowed_models and model.slug not in caller.allowed_models:
        raise ApiError(ErrorCode.MODEL_NOT_ALLOWED, f"This key may not use {model.slug}.", param="model")
    return model


def require_kind(model: ModelInfo, kind: str) -> None:
    """A chat model cannot embed, nor an embedding model answer."""
    if model.kind != kind:
        message = (
            f"model: {model.slug} is {'an' if model.kind == 'embedding' else 'a'} {model.kind} model; "
            f"send it to {_ENDPOINTS.get(model.kind, 'another endpoint')}"
        )
        raise ApiError(ErrorCode.INVALID_REQUEST, message, param="model")


def require_available(model: ModelInfo) -> None:
    """At least one of the model's providers is configured on this deployment."""
    for route in model.routes:  # a loop: any() over a generator left unfinished throws GeneratorExit in it
        if route.provider.configured:
            return
    message = f"{model.slug} is not available on this deployment: none of its providers is configured."
    raise ApiError(ErrorCode.PROVIDER_UNAVAILABLE, message, param="model")
