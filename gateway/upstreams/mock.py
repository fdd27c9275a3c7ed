"""The built-in sandbox upstream: deterministic, no network, streams with realistic pacing.

Route options (providers.yaml): `first_token_ms` (default 150) and `tokens_per_second` (default 60).
It answers with text; with tools and tool_choice required/named it calls the first (or named) tool;
with reasoning asked for it thinks out loud first. Usage counts one token per emitted word piece.
"""

import asyncio
import json
from collections.abc import AsyncGenerator

import aiohttp

from gateway.canonical import (
    BlockStart,
    BlockStop,
    CanonicalRequest,
    Event,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.tokens import estimate_prompt_tokens
from gateway.upstreams.base import RouteInfo, UpstreamAdapter
from gateway.upstreams.registry import register


def _pieces(text: str) -> list[str]:
    """Split into word pieces that keep their spaces, as a tokenizer's output would."""
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _reply(request: CanonicalRequest) -> str:
    last_user = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    quoted = " ".join(last_user.split()[:12]) or "nothing"
    return f"Hello from the HyperInfer sandbox. You said: {quoted}"


@register
class MockAdapter(UpstreamAdapter):
    kind = "mock"
    label = "Mock (offline sandbox)"
    needs_base_url = False  # no network at all
    needs_credentials = False

    async def stream(
        self, request: CanonicalRequest, route: RouteInfo, session: aiohttp.ClientSession
    ) -> AsyncGenerator[Event, None]:
        delay = 1 / float(route.options.get("tokens_per_second", 60))
        await asyncio.sleep(float(route.options.get("first_token_ms", 150)) / 1000)
        budget = request.max_tokens or 1_000_000
        produced = reasoning = 0
        index = 0
        finish: FinishReason

        if request.reasoning and request.reasoning.enabled is not False:
            yield BlockStart(index, "reasoning")
            for piece in _pieces("The user wants a short, friendly answer.")[:budget]:
                yield ReasoningDelta(index, piece)
                produced += 1
                reasoning += 1
                await asyncio.sleep(delay)
            yield BlockStop(index)
            index += 1

        tool = self._tool_to_call(request)
        if tool is not None and produced < budget:
            yield BlockStart(index, "tool_call", tool_call_id=f"call_mock_{index}", tool_name=tool)
            for piece in ('{"input": ', json.dumps(_reply(request)[:40]), "}"):
                yield ToolCallDelta(index, piece)
                produced += 1
                await asyncio.sleep(delay)
            yield BlockStop(index)
            finish = "tool_calls"
        else:
            pieces = _pieces(_reply(request))
            remaining = max(0, budget - produced)
            yield BlockStart(index, "text")
            for piece in pieces[:remaining]:
                yield TextDelta(index, piece)
                produced += 1
                await asyncio.sleep(delay)
            yield BlockStop(index)
            finish = "length" if len(pieces) > remaining else "stop"
        yield Finish(finish)
        yield Usage(
            prompt_tokens=estimate_prompt_tokens(request),
            completion_tokens=produced,
            reasoning_tokens=reasoning,
        )

    @staticmethod
    def _tool_to_call(request: CanonicalRequest) -> str | None:
        choice = request.tool_choice
        if not request.tools or choice is None or choice.mode in ("auto", "none"):
            return None
        return choice.name if choice.mode == "tool" else request.tools[0].name
