"""The Jan spec's tokenizer endpoints, for any model of the catalog: `POST /api/v1/tokenize` (`{model,
input}` → `{tokens}`), `/api/v1/tokenize/count` (→ `{count}`) and `/api/v1/detokenize` (`{model, tokens}` →
`{text}`).
Free of charge. Token ids exist only where the model's upstream exposes its tokenizer (llama.cpp); elsewhere
tokenize and detokenize are refused naming `model`, and count answers the gateway's estimate, which errs high
(`x-hyperinfer-token-count: exact | estimate`)."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings

from core.encoding import compact_json
from core.envelopes import openai_error_body
from core.errors import ApiError, ErrorCode
from core.ids import new_request_id
from gateway.auth import Caller, authenticate
from gateway.catalog_cache import ModelInfo
from gateway.endpoint import answered
from gateway.http import (
    Receive,
    Scope,
    Send,
    headers_of,
    parse_json_object,
    read_body,
    request_id_headers,
    send_json,
)
from gateway.metering import get_meter
from gateway.outage import in_thread_within
from gateway.resolve import resolved_model
from gateway.session import upstream_client
from gateway.tokens import text_tokens
from gateway.upstreams.base import RouteInfo, UpstreamAdapter, UpstreamError
from gateway.upstreams.http1 import HttpError, UpstreamClient
from gateway.upstreams.registry import adapter_for

logger = logging.getLogger(__name__)
TOKENIZE_PATH, COUNT_PATH, DETOKENIZE_PATH = (
    "/api/v1/tokenize",
    "/api/v1/tokenize/count",
    "/api/v1/detokenize",
)
T = TypeVar("T")
Ask = Callable[[UpstreamAdapter, RouteInfo, UpstreamClient], Awaitable[T | None]]


def _admit(headers: dict[bytes, bytes], body: bytes, field: str) -> tuple[Caller, ModelInfo, Any]:
    caller = authenticate(headers)
    fields = parse_json_object(body)
    slug = fields.get("model")
    if not isinstance(slug, str) or not slug:
        raise ApiError(
            ErrorCode.INVALID_REQUEST, "model: the catalog slug whose tokenizer to use", param="model"
        )
    value = fields.get(field)
    if field == "input" and not isinstance(value, str):
        raise ApiError(ErrorCode.INVALID_REQUEST, "input: a string is required", param="input")
    if field == "tokens" and not (
        isinstance(value, list) and all(type(token) is int and token >= 0 for token in value)
    ):
        raise ApiError(ErrorCode.INVALID_REQUEST, "tokens: a list of token ids is required", param="tokens")
    return caller, resolved_model(caller, slug), value


async def _first_answer(model: ModelInfo, ask: Ask[T]) -> T | None:
    """The first configured route's upstream that can answer; None when none can."""
    for route in model.routes:
        if not route.provider.configured:
            continue
        try:
            answer = await ask(adapter_for(route.provider.kind), route, upstream_client())
        except (UpstreamError, HttpError, TimeoutError, KeyError, ValueError) as exc:
            logger.warning("%s: its tokenizer failed (%s); trying the next", route.provider.slug, exc)
            continue
        if answer is not None:
            return answer
    return None


def _no_tokenizer(model: ModelInfo) -> ApiError:
    message = (
        f"model: {model.slug}'s provider does not expose its tokenizer; POST /api/v1/tokenize/count gives "
        "an estimated count"
    )
    return ApiError(ErrorCode.INVALID_REQUEST, message, param="model")


async def _tokenize(model: ModelInfo, text: str) -> tuple[dict[str, Any], bool]:
    tokens = await _first_answer(model, lambda adapter, route, client: adapter.tokenize(text, route, client))
    if tokens is None:
        raise _no_tokenizer(model)
    return {"tokens": tokens}, True


async def _count(model: ModelInfo, text: str) -> tuple[dict[str, Any], bool]:
    count = await _first_answer(
        model, lambda adapter, route, client: adapter.count_text_tokens(text, route, client)
    )
    return ({"count": count}, True) if count is not None else ({"count": text_tokens(len(text))}, False)


async def _detokenize(model: ModelInfo, tokens: list[int]) -> tuple[dict[str, Any], bool]:
    text = await _first_answer(
        model, lambda adapter, route, client: adapter.detokenize(tokens, route, client)
    )
    if text is None:
        raise _no_tokenizer(model)
    return {"text": text}, True


def _handler(
    field: str, answer: Callable[[ModelInfo, Any], Awaitable[tuple[dict[str, Any], bool]]]
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()

        async def work() -> tuple[dict[str, Any], bool]:
            body = await read_body(receive, settings.GATEWAY_MAX_BODY_BYTES)
            caller, model, value = await in_thread_within(_admit, headers_of(scope), body, field)
            await get_meter().count_free_request(caller=caller)
            return await answer(model, value)

        done = await answered(send, request_id, openai_error_body, work)
        if done is not None:
            result, exact = done
            kind = b"exact" if exact else b"estimate"
            headers = [*request_id_headers(request_id), (b"x-hyperinfer-token-count", kind)]
            await send_json(send, 200, compact_json(result), headers)

    return handle


tokenize = _handler("input", _tokenize)
tokenize_count = _handler("input", _count)
detokenize = _handler("tokens", _detokenize)
