"""Admission, the first half of the gateway's pipeline (gateway/pipeline.py), for every ingress format: who
is calling, which model, whether they may (kind, context, availability, server tools planned, PDFs read),
then the worst case held (design §4.1). A refusal for money is recorded in the caller's activity."""

import contextlib
import logging
import time
from dataclasses import dataclass

from django.core.exceptions import SynchronousOnlyOperation

from core.errors import ApiError, ErrorCode
from gateway.auth import Caller, authenticate, authenticate_from_memory, key_is_known
from gateway.canonical import CanonicalRequest
from gateway.catalog_cache import ModelInfo, catalog_cache
from gateway.http import (
    Scope,
    headers_of,
    parse_json_object,
)
from gateway.ingress.base import IngressFormat
from gateway.ingress.validation import refuse_unanswerable_tool_choice
from gateway.metering import get_meter
from gateway.metering.records import Refusal, refusal_record
from gateway.outage import PostgresDown, in_thread_within
from gateway.resolve import require_available, require_image_input, require_kind, resolved_model
from gateway.routing import serves_raw_prompts
from gateway.session import guarded_fetch_session, web_session
from gateway.tokens import estimate_prompt_tokens, prompt_tokens_at_least, reservation_prompt_tokens
from gateway.tools.base import ToolContext
from gateway.tools.documents import pdf_parts_as_text
from gateway.tools.requested import (
    ToolPlan,
    plan,
    reserve_extra,
    with_tool_definitions,
)
from gateway.upstreams.registry import adapter_reads_documents

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Admitted:
    caller: Caller
    request: CanonicalRequest
    model: ModelInfo
    prompt_estimate: int  # what the meters bill when an upstream reports no usage
    prompt_reserve: int  # what the reservation holds: errs high (gateway/tokens.py)
    tools: ToolPlan | None = None  # the server tools switched on (ADR 0013)
    pdf_pages: int = 0  # PDF pages the pdf tool read into text (billed per page)


def _admit_with_key(fmt: IngressFormat, headers: dict[bytes, bytes], body: bytes) -> Admitted:
    """Who is calling, what they ask for, whether they may. Raises ApiError. May query the database (a key
    or catalog not cached yet, a playground key): runs in a worker thread."""
    return _admit(fmt, authenticate(headers), body)


def _admit(fmt: IngressFormat, caller: Caller, body: bytes) -> Admitted:
    """What the caller asks for, and whether they may. Raises ApiError. Queries the database only for a
    catalog not cached yet (see `admit`)."""
    request = fmt.parse_request(parse_json_object(body))
    refuse_unanswerable_tool_choice(request)
    model = resolved_model(caller, request.model)
    require_kind(model, "chat")
    if (least := prompt_tokens_at_least(request)) > model.context_length:
        message = (
            f"The prompt is at least {least:,} tokens; {model.slug} takes {model.context_length:,} at most."
        )
        raise ApiError(ErrorCode.CONTEXT_LENGTH_EXCEEDED, message, param=fmt.PROMPT_FIELD)
    require_available(model)
    require_image_input(model, request, fmt.PROMPT_FIELD)
    if request.raw_prompt is not None and not any(serves_raw_prompts(route) for route in model.routes):
        message = (
            f"model: {model.slug}'s providers have no text completions endpoint; "
            "send it to /api/v1/chat/completions instead"
        )
        raise ApiError(ErrorCode.INVALID_REQUEST, message, param="model")
    tools = plan(request, model, catalog_cache.tool_prices()) if request.server_tools else None
    offered = with_tool_definitions(request, tools)
    estimate = estimate_prompt_tokens(offered)
    return Admitted(
        caller,
        request,
        model,
        prompt_estimate=estimate,
        prompt_reserve=reservation_prompt_tokens(
            offered, context_length=model.context_length, estimate=estimate
        ),
        tools=tools,
    )


async def admit(fmt: IngressFormat, scope: Scope, body: bytes) -> Admitted:
    """Who is calling, what they ask for, whether they may; server tools planned, PDFs read."""
    headers = headers_of(scope)
    admitted = None
    # From memory when the key and the catalog are cached (design §4, fast path), else in a worker thread.
    caller = authenticate_from_memory(headers) if catalog_cache.is_fresh() else None
    if caller is not None:
        # The catalog can expire between the check and its use; Django then refuses the query here.
        with contextlib.suppress(SynchronousOnlyOperation):
            admitted = _admit(fmt, caller, body)
    if admitted is None:
        admitted = await _admitted_through_postgresql(fmt, headers, body)
    if admitted.tools is not None and any(use.name == "pdf" for use in admitted.request.server_tools):
        await _read_documents(admitted)
    return admitted


async def _admitted_through_postgresql(
    fmt: IngressFormat, headers: dict[bytes, bytes], body: bytes
) -> Admitted:
    """`_admit_with_key` in a worker thread. A known key whose load this request made itself, when
    PostgreSQL stopped answering it, is admitted on a second try: the caches then see that load stuck and
    answer from what they had (ADR 0025), where the request was refused after in_thread_within's bound."""
    try:
        return await in_thread_within(_admit_with_key, fmt, headers, body)
    except PostgresDown:
        if not key_is_known(headers):
            raise
        return await in_thread_within(_admit_with_key, fmt, headers, body)


async def reserve(admitted: Admitted, request_id: str) -> None:
    """The worst case held before anything goes upstream (design §4.1). Raises ApiError."""
    extra = 0
    if admitted.tools is not None:
        extra = reserve_extra(
            admitted.tools,
            admitted.model,
            admitted.prompt_reserve,
            admitted.request.max_tokens,
            pdf_pages=admitted.pdf_pages,
        )
    await get_meter().reserve(
        caller=admitted.caller,
        model=admitted.model,
        request_id=request_id,
        prompt_tokens=admitted.prompt_reserve,
        max_tokens=admitted.request.max_tokens,
        extra_micro_usd=extra,
    )


async def _read_documents(admitted: Admitted) -> None:
    """The pdf tool: PDF parts become text unless every route's upstream reads documents itself."""
    if all(adapter_reads_documents(route.provider.kind) for route in admitted.model.routes):
        return
    context = ToolContext(session=web_session(), fetch_session=guarded_fetch_session())
    read = await pdf_parts_as_text(admitted.request, context)
    admitted.request, admitted.pdf_pages = read.request, read.pages


# Refusals for money a workspace wants to see in its activity (why did my app's request fail?), recorded at
# no charge. Not the rate limit's: it exists to shed load, and a record per refused request would add it back.
RECORDED_REFUSALS = frozenset({ErrorCode.INSUFFICIENT_CREDITS, ErrorCode.KEY_LIMIT_EXCEEDED})


async def record_refusal(
    fmt: IngressFormat, admitted: Admitted, request_id: str, error: ApiError, started: float
) -> None:
    caller = admitted.caller
    refusal = Refusal(
        workspace_id=caller.workspace_id,
        api_key_id=caller.api_key_id,
        source=caller.source,
        model=admitted.model.slug,
        ingress_format=fmt.FORMAT,
        streamed=admitted.request.stream,
        error_code=error.code.value,
        latency_ms=int((time.monotonic() - started) * 1000),
        end_user=admitted.request.user or "",
    )
    try:
        await in_thread_within(refusal_record, request_id=request_id, refusal=refusal)
    except Exception:  # the client has its answer; a lost activity row must not become an error
        logger.exception("request %s: its refusal was not recorded", request_id)
