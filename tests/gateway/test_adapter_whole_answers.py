"""A non-streamed request asks the upstream for the whole answer (ADR 0019), against the real-HTTP fakes of
every dialect and Anthropic's: the answer folds to what the stream of the same answer folds to, and a
whole answer's failures are the same errors as a stream's."""

import dataclasses
import json

import pytest

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest, Message, TextBlock, ToolChoice, Usage
from gateway.fold import Folded
from gateway.upstreams.anthropic import AnthropicAdapter
from gateway.upstreams.base import UpstreamError
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake, anthropic_route
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
from tests.fakes.server import collect_events
from tests.gateway.test_adapter_openai_compatible import ADAPTERS, DIALECTS, WEATHER

ANSWERS = {
    "text": Scenario(text="Paris is the capital of France."),
    "reasoning": Scenario(reasoning="The user asks about Paris.", text="It is sunny.", reasoning_tokens=3),
    "tool": Scenario(text="", tool_calls=[FakeToolCall("get_weather", json.dumps({"city": "Paris"}))]),
    "text-and-tools": Scenario(
        text="Let me look.",
        tool_calls=[
            FakeToolCall("get_weather", '{"city": "Paris"}', id="call_a"),
            FakeToolCall("get_weather", '{"city": "Lyon"}', id="call_b"),
        ],
    ),
    "cut-short": Scenario(text="A long answer that", finish_reason="length"),
}


def ask(*, stream: bool, **fields) -> CanonicalRequest:
    messages = [Message("user", [TextBlock("What is the weather in Paris?")])]
    return CanonicalRequest(model="test/model", messages=messages, tools=[WEATHER], stream=stream, **fields)


def folded(events) -> Folded:
    answer = Folded()
    for event in events:
        answer.add(event)
    return answer


def content(answer: Folded) -> tuple:
    """What a client is answered, usage aside (a whole answer is one delta, a stream many)."""
    return answer.blocks, answer.finish_reason, answer.stop_sequence


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", list(ANSWERS))
def test_a_whole_answer_folds_to_what_its_stream_folds_to(dialect, case):
    scenario = ANSWERS[case]
    # llama.cpp streams a tool choice made for the model only (one left to it is asked whole: its server
    # cannot stream that, test_adapter_llamacpp.py), so its requests here name the tool.
    choice = {"tool_choice": ToolChoice("tool", "get_weather")} if dialect == "llamacpp" else {}
    with openai_fake(dialect, scenario) as fake:
        whole = folded(collect_events(ADAPTERS[dialect], ask(stream=False, **choice), fake.route()))
        streamed = folded(collect_events(ADAPTERS[dialect], ask(stream=True, **choice), fake.route()))
        sent_whole, sent_streamed = (r.body for r in fake.chat_requests[:2])
    assert sent_whole["stream"] is False and "stream_options" not in sent_whole
    assert sent_streamed["stream"] is True
    # The same request otherwise: only the stream flags differ.
    assert {k: v for k, v in sent_whole.items() if k != "stream"} == {
        k: v for k, v in sent_streamed.items() if k not in ("stream", "stream_options")
    }
    assert content(whole) == content(streamed)
    assert whole.blocks and whole.finish_reason == (
        scenario.finish_reason or ("tool_calls" if scenario.tool_calls else "stop")
    )
    if dialect != "llamacpp":
        assert whole.usage == streamed.usage  # provider metadata (time_info, perf_metrics) included
        assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (12, 7)


def test_llamacpp_reports_usage_in_a_whole_answer_so_nothing_is_probed_or_counted():
    scenario = Scenario(text="Five letters: a b c d e", prompt_tokens=41, completion_tokens=13)
    with openai_fake("llamacpp", scenario) as fake:
        events = collect_events(ADAPTERS["llamacpp"], ask(stream=False), fake.route())
        paths = [r.path for r in fake.requests]
    assert events[-1] == Usage(41, 13)
    assert paths == ["/v1/chat/completions"]  # no one-token probe, no /extras/tokenize/count


@pytest.mark.parametrize("dialect", ["cerebras", "llamacpp"])
def test_a_text_completion_not_streamed_is_asked_for_whole(dialect):
    scenario = Scenario(text=" Paris, of course.", prompt_tokens=6, completion_tokens=5)
    request = dataclasses.replace(ask(stream=False, raw_prompt="The capital of France is"), tools=[])
    with openai_fake(dialect, scenario) as fake:
        answer = folded(collect_events(ADAPTERS[dialect], request, fake.route()))
        sent = fake.completion_requests[-1].body
    assert sent["stream"] is False and sent["prompt"] == "The capital of France is"
    assert answer.text == " Paris, of course." and answer.finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (6, 5)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_answer_without_a_finish_reason_finishes_as_stop(dialect):
    with openai_fake(dialect, Scenario(text="Done.", failure="unfinished")) as fake:
        answer = folded(collect_events(ADAPTERS[dialect], ask(stream=False), fake.route()))
    assert answer.text == "Done." and answer.finish_reason == "stop"


FAILURES = {
    # failure: (the scenario's fields, the error code, retryable)
    "server_error": ({}, ErrorCode.PROVIDER_UNAVAILABLE, True),
    "rate_limited": ({}, ErrorCode.PROVIDER_RATE_LIMIT, True),
    "unauthorized": ({}, ErrorCode.PROVIDER_AUTH, True),  # another route's key may do
    "context_length": ({}, ErrorCode.CONTEXT_LENGTH_EXCEEDED, False),
    "stream_error": ({"stream_error_status": 429}, ErrorCode.PROVIDER_RATE_LIMIT, True),
    "malformed": ({}, ErrorCode.PROVIDER_UNAVAILABLE, True),
    "cut": ({}, ErrorCode.PROVIDER_UNAVAILABLE, True),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_whole_answers_failure_is_the_same_error_as_a_streams(dialect, failure):
    fields, code, retryable = FAILURES[failure]
    scenario = Scenario(failure=failure, **fields)
    caught = {}
    with openai_fake(dialect, scenario) as fake:
        for stream in (False, True):
            with pytest.raises(UpstreamError) as error:
                collect_events(ADAPTERS[dialect], ask(stream=stream), fake.route())
            caught[stream] = error.value
    assert caught[False].code == caught[True].code == code
    assert caught[False].retryable is caught[True].retryable is retryable
    if failure == "rate_limited":
        assert caught[False].retry_after == caught[True].retry_after == str(scenario.retry_after)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_first_byte_deadline_is_a_streams_and_a_whole_answer_has_the_providers_timeout(dialect):
    # The answer takes 0.5 s: past a 0.2 s first-byte deadline (which a stream's first event must meet)
    # and within the provider's timeout, which alone bounds a whole answer.
    scenario = Scenario(text="Slow but whole.", failure="slow_first_byte", delay=0.5)
    with openai_fake(dialect, scenario) as fake:
        route = fake.route(timeout=5, first_byte_timeout_seconds=0.2)
        answer = folded(collect_events(ADAPTERS[dialect], ask(stream=False), route))
        assert answer.text == "Slow but whole."
        with pytest.raises(UpstreamError) as caught:
            collect_events(ADAPTERS[dialect], ask(stream=False), fake.route(timeout=0.2))
    assert caught.value.code == ErrorCode.PROVIDER_TIMEOUT and caught.value.retryable


# --- Anthropic: the whole Message ------------------------------------------------------------------------
MESSAGES = {
    "text": AnthropicScenario(text="Paris is the capital of France."),
    "thinking": AnthropicScenario(thinking="The user asks about Paris.", text="It is sunny."),
    "redacted": AnthropicScenario(redacted_thinking="opaque-data", text="It is sunny."),
    "tool": AnthropicScenario(text="", tool_use=ToolUse("get_weather", {"city": "Paris"})),
    "text-tool-text": AnthropicScenario(
        text="Let me look.", tool_use=ToolUse("get_weather", {"city": "Paris"}), text_after_tool_use="Done."
    ),
    "stop-sequence": AnthropicScenario(text="One, two", stop_reason="stop_sequence", stop_sequence="three"),
    "cached": AnthropicScenario(text="Hi.", cache_read_input_tokens=30, cache_creation_input_tokens=5),
}
ANTHROPIC = AnthropicAdapter()


@pytest.mark.parametrize("case", list(MESSAGES))
def test_a_whole_message_folds_to_what_its_stream_folds_to(case):
    with anthropic_fake(MESSAGES[case]) as fake:
        route = anthropic_route(fake.url)
        whole = folded(collect_events(ANTHROPIC, ask(stream=False), route))
        streamed = folded(collect_events(ANTHROPIC, ask(stream=True), route))
        sent_whole, sent_streamed = (r.body for r in fake.requests[:2])
        accepted = fake.requests[0].headers["accept"]
    assert (
        sent_whole["stream"] is False and sent_streamed["stream"] is True and accepted == "application/json"
    )
    assert {k: v for k, v in sent_whole.items() if k != "stream"} == {
        k: v for k, v in sent_streamed.items() if k != "stream"
    }
    assert content(whole) == content(streamed) and whole.blocks
    assert whole.usage == streamed.usage and whole.usage.completion_tokens == 7


ANTHROPIC_FAILURES = {
    "overloaded": ErrorCode.PROVIDER_OVERLOADED,
    "rate_limit": ErrorCode.PROVIDER_RATE_LIMIT,
    "auth": ErrorCode.PROVIDER_AUTH,
    "server_error": ErrorCode.PROVIDER_UNAVAILABLE,
    "prompt_too_long": ErrorCode.CONTEXT_LENGTH_EXCEEDED,
    "error_event": ErrorCode.PROVIDER_OVERLOADED,
    "malformed": ErrorCode.PROVIDER_UNAVAILABLE,
    "truncated": ErrorCode.PROVIDER_UNAVAILABLE,
    "cut": ErrorCode.PROVIDER_UNAVAILABLE,
}


@pytest.mark.parametrize("failure", list(ANTHROPIC_FAILURES))
def test_a_whole_messages_failure_is_the_same_error_as_a_streams(failure):
    caught = {}
    with anthropic_fake(AnthropicScenario(failure=failure)) as fake:
        for stream in (False, True):
            with pytest.raises(UpstreamError) as error:
                collect_events(ANTHROPIC, ask(stream=stream), anthropic_route(fake.url))
            caught[stream] = error.value
    assert caught[False].code == caught[True].code == ANTHROPIC_FAILURES[failure]
    assert caught[False].retryable is caught[True].retryable
