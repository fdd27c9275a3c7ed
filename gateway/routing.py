"""A model's routes in order: a provider failing before its first event is retried on the next route."""

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest, Event, Usage
from gateway.catalog_cache import ModelInfo
from gateway.provider_slots import ProviderFull, slots_for
from gateway.route_health import route_health
from gateway.upstreams.base import RouteInfo, UpstreamError
from gateway.upstreams.http1 import UpstreamClient
from gateway.upstreams.registry import adapter_completes_text, adapter_for

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class OpenStream:
    route: RouteInfo
    first: Event
    rest: AsyncGenerator[Event, None]  # closed early when the client goes away


async def open_stream(request: CanonicalRequest, model: ModelInfo, client: UpstreamClient) -> OpenStream:
    """The first route that produces an event. Raises the last UpstreamError when none does; when no route
    took the request at all (each refused one of its fields: upstreams/extras.py), the first refusal."""
    # Made when raised: an exception made for every request, to be dropped by most, was 0.6 % of a worker.
    last_error: UpstreamError | None = None
    refusal: UpstreamError | None = None
    taken = False  # a route's adapter sent the request on
    for route in route_health.in_order(model.routes):
        provider = route.provider
        if not provider.configured:  # no key on this deployment: calling it could only fail
            continue
        if request.raw_prompt is not None and not serves_raw_prompts(route):
            continue  # a legacy text completion, and this upstream has only chat
        try:
            adapter = adapter_for(provider.kind)
        except (
            KeyError
        ):  # a provider row edited to a kind no adapter serves (the catalog's loader refuses it)
            logger.error(
                "route %s for %s: no adapter serves kind %r", provider.slug, model.slug, provider.kind
            )
            detail = f"{provider.slug}: no adapter for kind {provider.kind!r}"
            last_error = UpstreamError.provider_side(ErrorCode.PROVIDER_UNAVAILABLE, detail)
            continue
        limit = provider.max_concurrency
        if limit is None:  # the usual case: no slots to take
            events = adapter.stream(request, route, client)
        else:
            slots = slots_for(provider, limit)
            try:
                await slots.take()
            except ProviderFull as exc:  # at its limit: the next route; the provider did not fail
                logger.warning("route %s for %s not tried: %s", provider.slug, model.slug, exc)
                taken, last_error = True, exc
                continue
            events = slots.holding(adapter.stream(request, route, client))
        try:
            first = await anext(events)
        except UpstreamError as exc:
            await events.aclose()
            logger.warning(
                "route %s for %s failed before the first byte: %s", route.provider.slug, model.slug, exc
            )
            if exc.param is not None and not exc.retryable:
                refusal = refusal or exc  # a field this route's API lacks: another route's may have it
                continue
            taken, last_error = True, exc
            if not exc.retryable:
                route_health.answered(route)  # the request's fault, found by a provider that answers
                raise
            route_health.failed(route, exc)
            continue
        except StopAsyncIteration:
            taken = True
            last_error = UpstreamError(
                ErrorCode.PROVIDER_UNAVAILABLE, "The provider returned an empty stream."
            )
            continue
        route_health.answered(route)
        return OpenStream(route=route, first=first, rest=events)
    if refusal is not None and not taken:
        raise refusal
    raise last_error or UpstreamError(ErrorCode.PROVIDER_UNAVAILABLE, "The model has no route.")


def serves_raw_prompts(route: RouteInfo) -> bool:
    """Whether the route can take a legacy text completion: configured, with a completions endpoint."""
    return route.provider.configured and adapter_completes_text(route.provider.kind)


async def usage_when_cancelled(
    request: CanonicalRequest, opened: OpenStream, client: UpstreamClient, generated: Sequence[str]
) -> Usage | None:
    """What the route's upstream counts for the attempt the client left (None: it cannot tell). Bounded by
    the provider's timeout; a failure only means the gateway's estimate stands."""
    route = opened.route
    adapter = adapter_for(route.provider.kind)
    try:
        async with asyncio.timeout(route.provider.timeout_seconds):
            return await adapter.usage_when_cancelled(request, route, client, generated)
    except Exception as exc:
        logger.warning("%s: counting a cancelled attempt failed (%s)", route.provider.slug, exc)
        return None
