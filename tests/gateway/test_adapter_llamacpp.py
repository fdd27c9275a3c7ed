"""Jan / llama-cpp-python: no usage in the stream, so tokens are counted with the server's tokenizer."""

import pytest

from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    CanonicalRequest,
    Message,
    ResponseFormat,
    TextBlock,
    Tool,
    ToolCallBlock,
    ToolCallDelta,
    ToolChoice,
    ToolResultBlock,
    Usage,
)
from gateway.upstreams.base import ProviderInfo, RouteInfo, UpstreamError
from gateway.upstreams.llamacpp import LlamaCppAdapter, prompt_text
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
from tests.fakes.server import collect_events

ANSWER_AFTER_THE_RESULT = ToolChoice("none")


def conversation(choice: ToolChoice | None = ANSWER_AFTER_THE_RESULT) -> CanonicalRequest:
    """A tool's round trip, its answer streamed. The choice is not left to the model by default: such a
    request is asked for its whole answer (the server cannot stream that choice)."""
    return CanonicalRequest(
        model="local/model",
        messages=[
            Message("system", [TextBlock("You are terse.")]),
            Message("user", [TextBlock("Add two and three.")]),
            Message("assistant", [ToolCallBlock("c1", "add", '{"a": 2, "b": 3}')]),
            Message("tool", [ToolResultBlock("c1", [TextBlock("5")])]),
        ],
        tools=[Tool("add", "Adds", {"type": "object"})],
        tool_choice=choice,
        stream=True,
    )


def test_usage_is_exact_the_stream_counts_completion_and_a_one_token_probe_counts_the_prompt():
    request = conversation()
    with openai_fake("llamacpp", Scenario(text="The sum is 5.", prompt_tokens=31)) as fake:
        events = collect_events(LlamaCppAdapter(), request, fake.route(model="qwen"))
        streamed, probe = fake.chat_requests
    assert "stream_options" not in streamed.body
    # The probe is the same chat, not streamed, one token: the server's usage counts the templated prompt.
    assert probe.body["stream"] is False and probe.body["max_tokens"] == 1
    assert probe.body["messages"] == streamed.body["messages"] and probe.body["model"] == "qwen"
    # The server's tokenizer counts the answer (the fake: a token a word, plus the BOS it adds to any text).
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=4)


def test_the_completion_counted_is_never_above_the_limit_the_server_stopped_at():
    """Re-tokenized, a sampled answer can count more tokens than were generated: the server generates at most
    max_tokens, so no more are billed."""
    request = conversation()
    request.max_tokens = 3
    with openai_fake("llamacpp", Scenario(text="The sum is 5.", prompt_tokens=31)) as fake:
        events = collect_events(LlamaCppAdapter(), request, fake.route(model="qwen"))
        streamed, _ = fake.chat_requests
    assert streamed.body["max_tokens"] == 3
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=3)  # the text counts 4


def test_an_answer_counted_below_its_chunks_is_billed_its_chunks():
    """Each chunk of text holds a token at least (an ASCII answer's one each); re-tokenized, a sampled answer
    can count fewer (19 for one cut at 20): at least its chunks are billed, the closing one not, nor a tool
    call's chunks."""
    request = conversation()
    with openai_fake("llamacpp", Scenario(text="ab cd ef", piece=1, prompt_tokens=31)) as fake:
        events = collect_events(LlamaCppAdapter(), request, fake.route(model="qwen"))
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=8)  # 8 chunks; a token a word counts 3

    with openai_fake("llamacpp", Scenario(text="東京 寿司", piece=1, prompt_tokens=31)) as fake:
        events = collect_events(LlamaCppAdapter(), request, fake.route(model="qwen"))
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=5)  # 5 chunks; 2 words

    request.raw_prompt = "Add two and three."  # a text completion: its last chunk is empty, with the reason
    with openai_fake("llamacpp", Scenario(text="ab cd ef", piece=1, prompt_tokens=31)) as fake:
        events = collect_events(LlamaCppAdapter(), request, fake.route(model="qwen"))
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=8)

    call = Scenario(text="", tool_calls=[FakeToolCall("add", '{"a": 2, "b": 3}')], piece=1, prompt_tokens=31)
    with openai_fake("llamacpp", call) as fake:
        events = collect_events(LlamaCppAdapter(), conversation(), fake.route(model="qwen"))
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=4)  # the arguments' words, not chunks


def test_a_non_ascii_answer_is_billed_its_count_past_the_limit():
    """The server checks max_tokens only between whole characters, so a text ending in one split over several
    tokens runs past the limit (measured: 27 tokens for 26): those tokens were generated, and are billed."""
    request = conversation()
    request.max_tokens = 3
    with openai_fake("llamacpp", Scenario(text="東京 は 大きい 🍣", prompt_tokens=31)) as fake:
        events = collect_events(LlamaCppAdapter(), request, fake.route(model="qwen"))
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=4)  # a token a word: 4, over max_tokens 3


def test_without_the_probe_the_servers_tokenizer_counts_the_prompt_text():
    request = conversation()
    with openai_fake("llamacpp", Scenario(text="The sum is 5.")) as fake:
        adapter = LlamaCppAdapter()

        async def failing_probe(*args):
            raise ValueError("no usage in the probe's answer")

        adapter.prompt_tokens = failing_probe
        events = collect_events(adapter, request, fake.route(model="qwen"))
        counts = [r for r in fake.requests if r.path == "/extras/tokenize/count"]
    assert [r.body["input"] for r in counts] == ["The sum is 5.", "", prompt_text(request)]
    # The fake tokenizer: one token per word plus BOS.
    assert events[-1] == Usage(prompt_tokens=len(prompt_text(request).split()) + 1, completion_tokens=4)


def test_the_prompt_text_holds_every_message_tool_call_result_and_tool_definition():
    assert prompt_text(conversation()).split("\n") == [
        "You are terse.",
        "Add two and three.",
        'add {"a": 2, "b": 3}',
        "5",
        '{"name": "add", "parameters": {"type": "object"}}',
    ]


def test_tool_call_arguments_are_counted_as_completion():
    scenario = Scenario(text="", tool_calls=[FakeToolCall("add", '{"a": 2, "b": 3}')])
    with openai_fake("llamacpp", scenario) as fake:
        events = collect_events(LlamaCppAdapter(), conversation(ToolChoice("tool", "add")), fake.route())
    # The tokenizer counts the arguments (4 words), not the 5 chunks they came in.
    assert events[-1].completion_tokens == 4


def test_without_an_api_key_no_authorization_header_is_sent_anywhere():
    with openai_fake("llamacpp", api_key="") as fake:
        collect_events(LlamaCppAdapter(), conversation(), fake.route())
        assert len(fake.requests) == 4  # the stream, the output's count (and "" once), the usage probe
        assert all("Authorization" not in r.headers for r in fake.requests)


def test_with_an_api_key_both_endpoints_get_the_bearer_header():
    with openai_fake("llamacpp", api_key="local-secret") as fake:
        collect_events(LlamaCppAdapter(), conversation(), fake.route())
        assert {r.headers["Authorization"] for r in fake.requests} == {"Bearer local-secret"}


def test_grammar_and_mirostat_pass_through_and_json_schemas_become_json_object_with_schema():
    request = conversation()
    request.extra = {"grammar": 'root ::= "yes" | "no"', "mirostat_mode": 2, "mirostat_tau": 5.0}
    request.response_format = ResponseFormat("json_schema", "answer", {"type": "object"})
    with openai_fake("llamacpp") as fake:
        collect_events(LlamaCppAdapter(), request, fake.route())
        body = fake.chat_requests[0].body
    assert (body["grammar"], body["mirostat_mode"], body["mirostat_tau"]) == ('root ::= "yes" | "no"', 2, 5.0)
    assert body["response_format"] == {"type": "json_object", "schema": {"type": "object"}}
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}


ROUTE = RouteInfo(ProviderInfo("local", "llamacpp", "http://127.0.0.1:1/v1", "", 5), "m")
WEATHER = Tool("get_weather", "Weather in a city", {"type": "object"})
TIME = Tool("get_time", "Time in a city", {"type": "object"})


@pytest.mark.parametrize(
    ("tools", "choice", "sent"),
    [
        # The server shows the model its tools only when told to: none said is OpenAI's and Anthropic's auto.
        ([WEATHER], None, "auto"),
        ([WEATHER, TIME], ToolChoice("auto"), "auto"),
        ([WEATHER, TIME], ToolChoice("none"), "none"),
        (
            [WEATHER, TIME],
            ToolChoice("tool", "get_time"),
            {"type": "function", "function": {"name": "get_time"}},
        ),
        # "required" fails the server's assertion: with one tool it means that tool.
        ([WEATHER], ToolChoice("required"), {"type": "function", "function": {"name": "get_weather"}}),
        ([], None, None),
    ],
)
def test_the_tool_choice_sent_is_one_the_servers_chat_handler_takes(tools, choice, sent):
    request = CanonicalRequest(
        model="m", messages=[Message("user", [TextBlock("Hi")])], tools=tools, tool_choice=choice
    )
    body = LlamaCppAdapter().build_body(request, ROUTE)
    assert body.get("tool_choice") == sent


def test_a_call_required_among_several_tools_is_refused_naming_tool_choice():
    request = CanonicalRequest(
        model="m",
        messages=[Message("user", [TextBlock("Hi")])],
        tools=[WEATHER, TIME],
        tool_choice=ToolChoice("required"),
    )
    with pytest.raises(UpstreamError) as refused:
        LlamaCppAdapter().build_body(request, ROUTE)
    assert (refused.value.code, refused.value.param) == (ErrorCode.INVALID_REQUEST, "tool_choice")
    assert not refused.value.retryable  # a field this route cannot take: another route's may
    assert "name the tool" in refused.value.message


def test_a_stream_that_leaves_the_tool_choice_to_the_model_is_made_from_the_whole_answer():
    """The server cannot stream a choice left to the model: the whole answer is asked (with "auto"), and its
    events and the server's own usage are what the stream gets."""
    scenario = Scenario(text="", tool_calls=[FakeToolCall("add", '{"a": 2, "b": 3}')], prompt_tokens=31)
    with openai_fake("llamacpp", scenario) as fake:
        events = collect_events(LlamaCppAdapter(), conversation(choice=None), fake.route())
        (asked,) = fake.chat_requests  # no count, no probe: the answer has the server's usage
    assert asked.body["stream"] is False and asked.body["tool_choice"] == "auto"
    assert [e.tool_name for e in events if isinstance(e, BlockStart)] == ["add"]
    assert "".join(e.arguments for e in events if isinstance(e, ToolCallDelta)) == '{"a": 2, "b": 3}'
    assert events[-1] == Usage(prompt_tokens=31, completion_tokens=scenario.completion_tokens)
