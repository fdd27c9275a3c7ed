"""Which catalog model a request names, and whether its caller may use it here: one rule for every gateway
endpoint (the ingress formats, embeddings, token counting, the tokenizer). Raises ApiError."""

from collections.abc import Sequence

from core.errors import ApiError, ErrorCode
from gateway.auth import Caller
from gateway.canonical import CanonicalRequest, ImageBlock, ToolResultBlock
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


def require_image_input(model: ModelInfo, request: CanonicalRequest, param: str) -> None:
    """An image goes only to a model the catalog lists with image input (`vision`): a text-only model's
    server drops it, or reads its data as text (llama.cpp's did: a prompt of 61 tokens came to 146), and the
    caller pays for an answer that never saw it."""
    if "vision" in model.features:
        return
    for message in request.messages:  # a loop: any() over a generator left unfinished throws GeneratorExit
        if _has_image(message.content):
            message_text = (
                f"{param}: {model.slug} takes text only (its input_modalities); "
                "send images to a model that takes image input"
            )
            raise ApiError(ErrorCode.INVALID_REQUEST, message_text, param=param)


def _has_image(blocks: Sequence[object]) -> bool:
    for block in blocks:
        if isinstance(block, ImageBlock):
            return True
        if isinstance(block, ToolResultBlock) and _has_image(block.content):
            return True
    return False
