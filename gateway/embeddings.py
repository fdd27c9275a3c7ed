"""POST /api/v1/embeddings (OpenAI's shape, what `client.embeddings.create()` calls) for the catalog's
embedding models (`kind: embedding`).

One request is one upstream call, tried on the model's routes in order (the next on a provider-side
failure, as chat falls back), metered like a chat request with no output: the worst case held first (every
input at the estimate, which errs high), the upstream's own prompt count billed (the estimate when it
reports none), recorded as a generation with `ingress_format: embeddings`. The settlement journal has the
outcome before the client has the vectors, so a crash after the answer still bills it (ADR 0010).
"""

import base64
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.encoding import compact_json
from core.envelopes import openai_error_body
from core.errors import ApiError, ErrorCode
from core.ids import new_request_id
from gateway import metrics
from gateway.auth import Caller, authenticate
from gateway.canonical import Usage
from gateway.catalog_cache import ModelInfo
from gateway.endpoint import answered, send_internal_error
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
from gateway.ingress.validation import load_validator, validate_or_raise
from gateway.metering import Outcome, Settlement, get_meter
from gateway.metering.base import settlement_header, total_cost
from gateway.metering.keeper import loop_journal
from gateway.metering.writer import loop_flusher
from gateway.models import GenerationStatus
from gateway.outage import in_thread_within
from gateway.provider_slots import ProviderFull, slot_held
from gateway.resolve import require_available, require_kind, resolved_model
from gateway.route_health import route_health
from gateway.session import upstream_client
from gateway.tokens import text_tokens
from gateway.upstreams.base import Embedded, RouteInfo, UpstreamError
from gateway.upstreams.registry import adapter_for

logger = logging.getLogger(__name__)
PATH = "/api/v1/embeddings"
FORMAT = "embeddings"  # Generation.ingress_format
REQUEST_VALIDATOR = load_validator("embeddings.request.json")
_MOST_CHARS_PER_TOKEN = 16  # as gateway/tokens.py: no tokenizer packs more text into one token


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...]
    base64: bool  # encoding_format: base64
    dimensions: int | None
    user: str | None


@dataclass(frozen=True, slots=True)
class Admitted:
    caller: Caller
    request: EmbeddingRequest
    model: ModelInfo
    prompt_estimate: int  # billed when the upstream reports no count; held before the call


def parse_request(body: dict[str, Any]) -> EmbeddingRequest:
    if isinstance(body.get("input"), list) and any(not isinstance(item, str) for item in body["input"]):
        raise ApiError(
            ErrorCode.INVALID_REQUEST, "input: send text; token ids are not accepted here", param="input"
        )
    validate_or_raise(REQUEST_VALIDATOR, body)
    raw = body["input"]
    return EmbeddingRequest(
        model=body["model"],
        inputs=(raw,) if isinstance(raw, str) else tuple(raw),
        base64=body.get("encoding_format") == "base64",
        dimensions=body.get("dimensions"),
        user=body.get("user"),
    )


def _admit(headers: dict[bytes, bytes], body: bytes) -> Admitted:
    """Who calls, for what, whether they may. Raises ApiError. May query the database."""
    caller = authenticate(headers)
    request = parse_request(parse_json_object(body))
    model = resolved_model(caller, request.model)
    require_kind(model, "embedding")
    require_available(model)
    for position, text in enumerate(request.inputs):
        if (least := len(text) // _MOST_CHARS_PER_TOKEN) > model.context_length:
            message = f"This input is at least {least:,} tokens; {model.slug} takes {model.context_length:,}."
            field = "input" if len(request.inputs) == 1 else f"input[{position}]"
            raise ApiError(ErrorCode.CONTEXT_LENGTH_EXCEEDED, message, param=field)
    if request.dimensions is not None and model.dimensions and request.dimensions > model.dimensions:
        message = f"dimensions: {model.slug}'s vectors have {model.dimensions}; ask for that many or fewer"
        raise ApiError(ErrorCode.INVALID_REQUEST, message, param="dimensions")
    if not any(_embeds(route, request) for route in model.routes):
        message = f"dimensions: {model.slug}'s providers cannot shorten its vectors; leave it out"
        raise ApiError(ErrorCode.INVALID_REQUEST, message, param="dimensions")
    estimate = sum(min(text_tokens(len(text)), model.context_length) for text in request.inputs)
    return Admitted(caller, request, model, prompt_estimate=estimate)


def _embeds(route: RouteInfo, request: EmbeddingRequest) -> bool:
    """Whether the route can answer: configured, with embeddings, and shorter vectors if they are asked."""
    if not route.provider.configured:
        return False
    try:
        adapter = adapter_for(route.provider.kind)
    except KeyError:  # a provider row edited to a kind no adapter serves (the catalog's loader refuses it)
        logger.error("route %s: no adapter serves kind %r", route.provider.slug, route.provider.kind)
        return False
    return adapter.serves_embeddings and (request.dimensions is None or adapter.shortens_embeddings)


async def _embedded(admitted: Admitted) -> tuple[RouteInfo, Embedded]:
    """The first route that answers; a provider-side failure passes to the next. Raises UpstreamError."""
    request, model = admitted.request, admitted.model
    last = UpstreamError(ErrorCode.PROVIDER_UNAVAILABLE, "The model has no route that embeds.")
    for route in route_health.in_order(model.routes):
        if not _embeds(route, request):
            continue
        adapter = adapter_for(route.provider.kind)
        try:
            async with slot_held(route.provider):
                embedded = await adapter.embed(
                    request.inputs, route, upstream_client(), dimensions=request.dimensions
                )
        except ProviderFull as exc:  # at its limit: the next route; the provider did not fail
            logger.warning("route %s for %s not tried: %s", route.provider.slug, model.slug, exc)
            last = exc
            continue
        except UpstreamError as exc:
            logger.warning("route %s for %s failed: %s", route.provider.slug, model.slug, exc)
            if not exc.retryable:
                route_health.answered(route)
                raise
            route_health.failed(route, exc)
            last = exc
            continue
        route_health.answered(route)
        return route, embedded
    raise last


def _vector(values: list[float], as_base64: bool) -> list[float] | str:
    """A vector as the client asked for it: numbers, or base64 of little-endian float32 (OpenAI's)."""
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def response_object(admitted: Admitted, embedded: Embedded, usage: Usage, cost_usd: float) -> dict[str, Any]:
    as_base64 = admitted.request.base64
    data = [
        {"object": "embedding", "index": index, "embedding": _vector(vector, as_base64)}
        for index, vector in enumerate(embedded.vectors)
    ]
    tokens = usage.prompt_tokens
    return {
        "object": "list",
        "data": data,
        "model": admitted.model.slug,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "cost": cost_usd},
    }


def _settlement(admitted: Admitted, request_id: str, outcome: Outcome) -> Settlement:
    return Settlement(
        request_id=request_id,
        caller=admitted.caller,
        model=admitted.model,
        ingress_format=FORMAT,
        streamed=False,
        end_user=admitted.request.user,
        outcome=outcome,
    )


async def embeddings(scope: Scope, receive: Receive, send: Send) -> None:
    request_id = new_request_id()
    started = time.monotonic()

    async def admit_and_reserve() -> Admitted:
        body = await read_body(receive, settings.GATEWAY_MAX_BODY_BYTES)
        admitted = await in_thread_within(_admit, headers_of(scope), body)
        await get_meter().reserve(
            caller=admitted.caller,
            model=admitted.model,
            request_id=request_id,
            prompt_tokens=admitted.prompt_estimate,
            max_tokens=0,
        )
        return admitted

    admitted = await answered(send, request_id, openai_error_body, admit_and_reserve)
    if admitted is not None:
        await _run(admitted, request_id, started, send)


async def _run(admitted: Admitted, request_id: str, started: float, send: Send) -> None:
    """The upstream call, the journal, the answer and the bill. Every path settles the reservation."""
    journal = loop_journal()
    loop_flusher()  # started by the lifespan already, except under runserver
    header = settlement_header(
        request_id=request_id,
        caller=admitted.caller,
        model=admitted.model,
        ingress_format=FORMAT,
        streamed=False,
        end_user=admitted.request.user,
    )
    journal.opened(request_id=request_id, header=header, prompt_estimate=admitted.prompt_estimate)
    body: bytes | None = None
    try:
        route, embedded = await _embedded(admitted)
        usage = Usage(prompt_tokens=embedded.prompt_tokens or admitted.prompt_estimate, completion_tokens=0)
        outcome = _outcome(GenerationStatus.COMPLETED, started, usage, route)
        cost = total_cost(admitted.model, outcome)
        body = compact_json(response_object(admitted, embedded, usage, cost / 1_000_000))
        status = 200
    except UpstreamError as exc:
        outcome = _outcome(GenerationStatus.FAILED, started, Usage(0, 0), None, exc)
        error = openai_error_body(exc.code, exc.message, request_id, exc.param)
        status, body = ApiError(exc.code, exc.message).status, compact_json(error)
    except Exception as exc:
        logger.exception("embeddings request %s failed", request_id)
        detail = UpstreamError(ErrorCode.INTERNAL_ERROR, "", detail=f"{type(exc).__name__}: {exc}")
        outcome = _outcome(GenerationStatus.FAILED, started, Usage(0, 0), None, detail)
        status, body = 500, None
    # Before the client has its answer: a process killed from here on still bills it (ADR 0010).
    journal.settling(request_id=request_id, outcome=outcome)
    if body is None:
        await send_internal_error(send, request_id, openai_error_body)
    else:
        try:
            await send_json(send, status, body, request_id_headers(request_id))
        except OSError:
            logger.info("client %s went away before the embeddings", request_id)
    await _settle(admitted, request_id, outcome)


def _outcome(
    status: str, started: float, usage: Usage, route: RouteInfo | None, error: UpstreamError | None = None
) -> Outcome:
    return Outcome(
        status=status,
        usage=usage,
        provider=route.provider.slug if route else "",
        upstream_model_id=route.upstream_model_id if route else "",
        error_code=error.code.value if error else "",
        error_detail=error.detail if error else "",
        latency_ms=int((time.monotonic() - started) * 1000),
    )


async def _settle(admitted: Admitted, request_id: str, outcome: Outcome) -> None:
    """Bill the outcome, and count it in /metrics as the formats' requests are (gateway/metrics.py)."""
    journal, meter = loop_journal(), get_meter()
    try:
        cost = await meter.settle(_settlement(admitted, request_id, outcome))
    except Exception as exc:
        logger.warning("settling %s failed (%s); the journal's keeper retries it", request_id, exc)
        journal.refused(request_id=request_id, retry_in=1.0)
        metrics.observe(FORMAT, admitted.model.slug, outcome, None, journal)
        return
    journal.taken(request_id=request_id, durable=meter.durable)
    metrics.observe(FORMAT, admitted.model.slug, outcome, cost, journal)
