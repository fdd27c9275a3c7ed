"""The sandbox's plain answers: a short echo, or — asked for something long — a long text streamed until
max_tokens, so the playground's streaming and Stop can be tried offline."""

import asyncio

from gateway.canonical import CanonicalRequest, Finish, Message, TextBlock, TextDelta, Usage
from gateway.upstreams.base import ProviderInfo, RouteInfo
from gateway.upstreams.mock import MockAdapter

ROUTE = RouteInfo(
    ProviderInfo("sandbox", "mock", "", "", 5.0), "sandbox", {"first_token_ms": 0, "tokens_per_second": 1e6}
)


def answer(text: str, max_tokens: int | None) -> list:
    request = CanonicalRequest("sandbox", [Message("user", [TextBlock(text)])], max_tokens=max_tokens)

    async def go():
        return [event async for event in MockAdapter().stream(request, ROUTE, None)]

    return asyncio.run(go())


def test_a_short_question_gets_a_short_echo():
    events = answer("Say hi", max_tokens=1000)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Hello from the HyperInfer sandbox. You said: Say hi"
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]


def test_asked_for_a_long_story_it_streams_until_max_tokens_and_counts_every_piece():
    events = answer("Tell me a long story", max_tokens=300)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 300
    assert [e.reason for e in events if isinstance(e, Finish)] == ["length"]
    assert [e.completion_tokens for e in events if isinstance(e, Usage)] == [300]
    assert "".join(d.text for d in deltas).startswith("This is a long answer from the HyperInfer sandbox")
