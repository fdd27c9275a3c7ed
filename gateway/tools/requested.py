"""The server tools one request switched on, as the pipeline runs them (ADR 0013): which tools and whether
the model can call them (refused by name when not), what they add to the reservation, the loop over the
model's routes, and what the calls cost."""

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import aiohttp
from django.conf import settings

from catalog.pricing import tool_costs_micro_usd
from core.errors import ApiError, ErrorCode
from gateway.canonical import CanonicalRequest, Event, Tool
from gateway.catalog_cache import ModelInfo
from gateway.routing import OpenStream, open_stream
from gateway.tools.base import ServerTool, ToolContext
from gateway.tools.budget import loop_reserve_micro_usd
from gateway.tools.loop import ToolLoop
from gateway.tools.registry import server_tools
from gateway.upstreams.http1 import UpstreamClient

# What a model without tool calling can still use: run once on the user's last turn, before it answers.
WITHOUT_TOOL_CALLING = frozenset({"web_search", "datetime"})


@dataclass(frozen=True, slots=True)
class ToolPlan:
    tools: dict[str, ServerTool]  # the loop's tools (pdf is not one: it reads the request's files)
    options: dict[str, dict[str, Any]]  # each tool's options from the client
    model_calls_tools: bool
    max_steps: int
    prices: Mapping[tuple[str, str], Decimal]  # as admitted: the bill uses the prices the request saw


def plan(request: CanonicalRequest, model: ModelInfo, prices: Mapping[tuple[str, str], Decimal]) -> ToolPlan:
    """The tools a request switched on, checked against the model. Raises ApiError naming what is wrong."""
    names = [use.name for use in request.server_tools if use.name != "pdf"]
    calls_tools = "tools" in model.features
    if not calls_tools and (needs := [name for name in names if name not in WITHOUT_TOOL_CALLING]):
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"{model.slug} cannot call tools, which the server tool {needs[0]!r} needs; "
            f"without tool calling only {' and '.join(sorted(WITHOUT_TOOL_CALLING))} run (once, first)",
            param="plugins",
        )
    tools = server_tools(names)
    clash = {tool.name for tool in request.tools} & tools.keys()
    if clash:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"tools: {min(clash)!r} is the name of a server tool this request switched on; rename it",
            param="tools",
        )
    return ToolPlan(
        tools=tools,
        options={use.name: use.options for use in request.server_tools},
        model_calls_tools=calls_tools,
        max_steps=settings.SERVER_TOOL_MAX_STEPS if calls_tools else 1,
        prices=prices,
    )


def reserve_extra(
    plan: ToolPlan, model: ModelInfo, prompt_tokens: int, max_tokens: int | None, *, pdf_pages: int = 0
) -> int:
    """What the tools may add to one answer's worst case (gateway/tools/budget.py), pages read included."""
    if plan.model_calls_tools:
        extra = loop_reserve_micro_usd(
            model=model,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            tools=plan.tools,
            max_steps=plan.max_steps,
            prices=plan.prices,
        )
    else:  # one step: only the calls run before it
        extra = sum(_dearest_call(plan, name) for name in plan.tools)
    return extra + sum(tool_costs_micro_usd(plan.prices, [("pdf", {"page": pdf_pages})]).values())


def _dearest_call(plan: ToolPlan, name: str) -> int:
    return sum(tool_costs_micro_usd(plan.prices, [(name, plan.tools[name].max_units)]).values())


def with_tool_definitions(request: CanonicalRequest, plan: ToolPlan | None) -> CanonicalRequest:
    """The request as its first step sends it (the server tools' definitions count in the prompt)."""
    if plan is None or not plan.model_calls_tools:
        return request
    offered = [Tool(t.name, t.description, t.parameters) for t in plan.tools.values()]
    return replace(request, tools=[*request.tools, *offered])


def tool_loop(
    plan: ToolPlan,
    session: aiohttp.ClientSession,
    fetch: aiohttp.ClientSession,
    on_step: Callable[[], None] | None = None,
) -> ToolLoop:
    return ToolLoop(
        plan.tools,
        ToolContext(session=session, fetch_session=fetch),
        plan.max_steps,
        model_calls_tools=plan.model_calls_tools,
        options=plan.options,
        on_step=on_step,
    )


async def open_looped(
    request: CanonicalRequest, model: ModelInfo, client: UpstreamClient, loop: ToolLoop
) -> OpenStream:
    """routing.open_stream for every step of the loop, as one OpenStream: its route is the first step's;
    a failure before the first event raises as open_stream does (the client gets the error response)."""
    routes: list[OpenStream] = []

    async def open_step(step_request: CanonicalRequest) -> AsyncGenerator[Event, None]:
        opened = await open_stream(step_request, model, client)
        routes.append(opened)
        return _whole(opened)

    events = loop.events(request, open_step)
    early: list[Event] = []  # a model without tool calling: the calls run before its step opens
    while not routes:
        early.append(await anext(events))
    return OpenStream(route=routes[0].route, first=early[0], rest=_after(early[1:], events))


async def _whole(opened: OpenStream) -> AsyncGenerator[Event, None]:
    try:
        yield opened.first
        async for event in opened.rest:
            yield event
    finally:
        await opened.rest.aclose()


async def _after(early: list[Event], events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
    try:
        for event in early:
            yield event
        async for event in events:
            yield event
    finally:
        await events.aclose()


def tool_costs(plan: ToolPlan, loop: ToolLoop, pdf_pages: int = 0) -> dict[str, int]:
    """What the calls that succeeded cost, by tool, in micro-USD (a failed call costs nothing)."""
    used = [(run.name, run.outcome.units) for run in loop.runs if not run.outcome.error]
    if pdf_pages:
        used.append(("pdf", {"page": pdf_pages}))
    return tool_costs_micro_usd(plan.prices, used)
