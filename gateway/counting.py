"""POST /api/v1/messages/count_tokens (Anthropic's shape, what `client.messages.count_tokens()` calls): a
prompt's tokens, free of charge — exact where the model's upstream can count (Anthropic's count endpoint,
llama.cpp's own tokenizer and chat template), else the gateway's estimate (gateway/tokens.py, which errs
high); the `x-hyperinfer-token-count` header says which."""

import logging
from dataclasses import dataclass

from django.conf import settings

from core.encoding import compact_json
from core.ids import new_request_id
from gateway.auth import Caller, authenticate
from gateway.canonical import CanonicalRequest
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
from gateway.ingress import anthropic_messages
from gateway.metering import get_meter
from gateway.outage import in_thread_within
from gateway.resolve import require_kind, resolved_model
from gateway.session import upstream_client
from gateway.tokens import estimate_prompt_tokens
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.http1 import HttpError
from gateway.upstreams.registry import adapter_for

logger = logging.getLogger(__name__)
PATH = "/api/v1/messages/count_tokens"


@dataclass(frozen=True, slots=True)
class Count:
    tokens: int
    exact: bool


def _admit(headers: dict[bytes, bytes], body: bytes) -> tuple[Caller, CanonicalRequest, ModelInfo]:
    caller = authenticate(headers)
    fields = parse_json_object(body)
    # count_tokens takes a Messages body without max_tokens; the parser wants one (it counts for nothing).
    # Every field sent is still validated as the documented schema says.
    request = anthropic_messages.parse_request({"max_tokens": 1, **fields})
    model = resolved_model(caller, request.model)
    require_kind(model, "chat")
    return caller, request, model


async def prompt_tokens_count(request: CanonicalRequest, model: ModelInfo) -> Count:
    """The first configured route whose upstream can count, else the estimate."""
    for route in model.routes:
        if not route.provider.configured:
            continue
        try:
            counted = await adapter_for(route.provider.kind).count_prompt_tokens(
                request, route, upstream_client()
            )
        except (UpstreamError, HttpError, TimeoutError, KeyError, ValueError) as exc:
            logger.warning("%s: counting tokens failed (%s); trying the next", route.provider.slug, exc)
            continue
        if counted is not None:
            return Count(counted, exact=True)
    return Count(estimate_prompt_tokens(request), exact=False)


async def count_tokens(scope: Scope, receive: Receive, send: Send) -> None:
    request_id = new_request_id()

    async def count() -> Count:
        body = await read_body(receive, settings.GATEWAY_MAX_BODY_BYTES)
        caller, request, model = await in_thread_within(_admit, headers_of(scope), body)
        await get_meter().count_free_request(caller=caller)
        return await prompt_tokens_count(request, model)

    counted = await answered(send, request_id, anthropic_messages.error_body, count)
    if counted is not None:
        kind = b"exact" if counted.exact else b"estimate"
        headers = [*request_id_headers(request_id), (b"x-hyperinfer-token-count", kind)]
        await send_json(send, 200, compact_json({"input_tokens": counted.tokens}), headers)
