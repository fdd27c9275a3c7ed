"""Baseten: `Api-Key` auth, running usage on every chunk, n = 1 only, sampling extras passed through."""

import pytest

from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    CanonicalRequest,
    Message,
    ReasoningControl,
    ReasoningDelta,
    TextBlock,
    TextDelta,
    Usage,
)
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.baseten import BasetenAdapter
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.server import collect_events


def ask(**fields) -> CanonicalRequest:
    fields.setdefault("stream", True)
    return CanonicalRequest(model="m", messages=[Message("user", [TextBlock("Hi")])], **fields)


def test_the_key_goes_in_an_api_key_authorization_header():
    with openai_fake("baseten", api_key="bt-secret") as fake:
        collect_events(BasetenAdapter(), ask(), fake.route())
        headers = fake.chat_requests[0].headers
    assert headers["Authorization"] == "Api-Key bt-secret"


def test_running_usage_on_every_chunk_is_not_summed_the_last_total_wins():
    with openai_fake(
        "baseten", Scenario(text="One two three.", completion_tokens=9, reasoning_tokens=4)
    ) as fake:
        events = collect_events(BasetenAdapter(), ask(), fake.route())
        body = fake.chat_requests[0].body
    assert body["stream_options"] == {"include_usage": True}
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "One two three."
    assert events[-1] == Usage(prompt_tokens=12, completion_tokens=9, reasoning_tokens=4)


def test_more_than_one_choice_is_refused_before_anything_is_sent():
    request = ask()
    request.extra = {"n": 2}
    with openai_fake("baseten") as fake, pytest.raises(UpstreamError) as caught:
        collect_events(BasetenAdapter(), request, fake.route())
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    assert fake.requests == []


def test_sampling_extras_pass_through_and_no_reasoning_field_is_invented():
    request = ask(reasoning=ReasoningControl(effort="high"), max_tokens=50)
    request.extra = {"top_k": 40, "repetition_penalty": 1.1, "chat_template_args": {"enable_thinking": False}}
    with openai_fake("baseten") as fake:
        collect_events(BasetenAdapter(), request, fake.route())  # the fake refuses fields outside the schema
        body = fake.chat_requests[0].body
    assert (body["top_k"], body["repetition_penalty"], body["max_tokens"]) == (40, 1.1, 50)
    assert body["chat_template_args"] == {"enable_thinking": False}
    assert "reasoning_effort" not in body


def test_reasoning_content_deltas_from_a_reasoning_model_become_a_reasoning_block():
    with openai_fake("baseten", Scenario(reasoning="Let me see.", text="Done.")) as fake:
        events = collect_events(BasetenAdapter(), ask(), fake.route())
    assert events[:3] == [BlockStart(0, "reasoning"), ReasoningDelta(0, "Let m"), ReasoningDelta(0, "e see")]
    assert BlockStart(1, "text") in events
