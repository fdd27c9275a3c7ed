"""Fields an ingress format does not map (provider-only options) and the controls every format shares, on
their way to each dialect family (gateway/upstreams/extras.py, docs/translation.md): untouched within a
family; across families sent when the target has the field, dropped when that is harmless, else refused
naming the field. Also the canonical fields some dialects lack (strict tools, files by URL, the matched stop
sequence)."""

import pytest

from core.errors import ApiError, ErrorCode
from gateway.canonical import CanonicalRequest, FileBlock, Message, ServerToolUse, TextBlock, Tool
from gateway.ingress import anthropic_messages, chat_completions, responses
from gateway.upstreams.anthropic_request import build_body as anthropic_body
from gateway.upstreams.base import ProviderInfo, RouteInfo, UpstreamError
from gateway.upstreams.cerebras import CerebrasAdapter
from gateway.upstreams.fireworks import FireworksAdapter
from gateway.upstreams.openai_compatible import OpenAICompatibleAdapter
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from

WEATHER = Tool("get_weather", None, {"type": "object", "properties": {}})
ROUTE = RouteInfo(ProviderInfo("p", "openai_compatible", "http://127.0.0.1:9", "", 5.0), "upstream-model")


def ask(**fields) -> CanonicalRequest:
    return CanonicalRequest(model="m", messages=[Message("user", [TextBlock("Hi")])], **fields)


def openai_body(request: CanonicalRequest, adapter=None) -> dict:
    return (adapter or OpenAICompatibleAdapter()).build_body(request, ROUTE)


def refused(build, request: CanonicalRequest) -> UpstreamError:
    with pytest.raises(UpstreamError) as raised:
        build(request)
    assert raised.value.code == ErrorCode.INVALID_REQUEST and not raised.value.retryable
    return raised.value


# --- Within a family: untouched -------------------------------------------------------------------------
def test_an_openai_family_request_reaches_an_openai_compatible_upstream_untouched():
    extra = {"top_k": 5, "min_p": 0.1, "reasoning_format": "raw", "seed": 7, "logit_bias": {"1": 2}}
    body = openai_body(ask(extra=extra))
    assert {name: body[name] for name in extra} == extra


def test_an_anthropic_request_reaches_an_anthropic_upstream_untouched():
    extra = {"top_k": 3, "service_tier": "standard_only", "container": "c-1"}
    body = anthropic_body(ask(extra=extra, extra_family="anthropic"), ROUTE)
    assert {name: body[name] for name in extra} == extra


# --- Across families ----------------------------------------------------------------------------------
def test_top_k_crosses_to_anthropic_and_harmless_hints_and_neutral_values_are_dropped():
    extra = {"top_k": 4, "store": True, "prompt_cache_key": "k", "service_tier": "auto", "n": 1}
    body = anthropic_body(ask(extra=extra), ROUTE)
    assert body["top_k"] == 4
    assert not {"store", "prompt_cache_key", "service_tier", "n"} & set(body)


@pytest.mark.parametrize(("name", "value"), [("seed", 7), ("n", 2), ("logprobs", True), ("logit_bias", {})])
def test_an_openai_field_anthropic_lacks_is_refused_naming_it(name, value):
    error = refused(lambda request: anthropic_body(request, ROUTE), ask(extra={name: value}))
    assert error.param == name and error.message.startswith(f"{name}: ")
    assert "Anthropic Messages API" in error.message


def test_an_anthropic_field_reaches_openai_dialects_only_where_they_have_it():
    request = ask(extra={"top_k": 4, "service_tier": "auto"}, extra_family="anthropic")
    body = openai_body(request, FireworksAdapter())
    assert body["top_k"] == 4 and "service_tier" not in body
    error = refused(lambda r: openai_body(r, CerebrasAdapter()), request)  # Cerebras has no top_k
    assert error.param == "top_k"
    container = ask(extra={"container": "c-1"}, extra_family="anthropic")
    assert refused(openai_body, container).param == "container"


# --- parallel_tool_calls, in every format and both families ----------------------------------------------
def test_parallel_tool_calls_is_read_from_every_format():
    tool = {"type": "function", "function": {"name": "f"}}
    chat = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tools": [tool]}
    assert chat_completions.parse_request({**chat, "parallel_tool_calls": False}).parallel_tool_calls is False
    assert chat_completions.parse_request(chat).parallel_tool_calls is None
    body = {"model": "m", "input": "Hi", "parallel_tool_calls": True}
    assert responses.parse_request(body).parallel_tool_calls is True
    messages = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]}
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    assert anthropic_messages.parse_request({**messages, "tool_choice": choice}).parallel_tool_calls is False
    with pytest.raises(ApiError) as raised:
        chat_completions.parse_request({**chat, "parallel_tool_calls": "no"})
    assert raised.value.param == "parallel_tool_calls"


def test_one_tool_call_at_a_time_in_each_dialect():
    request = ask(tools=[WEATHER], parallel_tool_calls=False)
    assert openai_body(request)["parallel_tool_calls"] is False
    assert anthropic_body(request, ROUTE)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    assert "parallel_tool_calls" not in openai_body(
        ask(parallel_tool_calls=False)
    )  # no tools, nothing to say
    assert "tool_choice" not in anthropic_body(ask(tools=[WEATHER], parallel_tool_calls=True), ROUTE)


# --- Responses-only fields --------------------------------------------------------------------------------
def parse_responses(**fields):
    return responses.parse_request({"model": "m", "input": "Hi", **fields})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("conversation", "conv_1"),
        ("prompt", {"id": "pmpt_1"}),
        ("background", True),
        ("truncation", "auto"),
        ("previous_response_id", "resp_1"),
    ],
)
def test_stateful_responses_features_are_refused_naming_the_field(name, value):
    with pytest.raises(ApiError) as raised:
        parse_responses(**{name: value})
    assert raised.value.code == ErrorCode.INVALID_REQUEST and raised.value.param == name


def test_responses_fields_that_shape_only_storage_or_output_are_dropped_and_the_rest_pass():
    request = parse_responses(
        metadata={"a": "b"},
        include=["reasoning.encrypted_content"],
        max_tool_calls=3,
        stream_options={"include_obfuscation": False},
        truncation="disabled",
        background=False,
        safety_identifier="end-user-9",
        prompt_cache_key="cache-1",
        top_k=20,
    )
    assert request.extra == {"prompt_cache_key": "cache-1", "top_k": 20}
    assert request.user == "end-user-9"  # the end user, when `user` is not given


def test_plugins_are_server_tools_in_chat_completions_as_in_messages_never_extras(settings):
    settings.IMAGE_GENERATION_BACKEND = ""
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "plugins": [{"id": "web_fetch"}]}
    request = chat_completions.parse_request({**body, "hi_tool_events": True})
    assert request.server_tools == (ServerToolUse("web_fetch"),) and request.tool_events
    assert request.extra == {}
    with pytest.raises(ApiError) as raised:
        chat_completions.parse_request({**body, "plugins": [{"id": "image"}]})
    assert raised.value.param == "plugins[0].id" and "not configured" in raised.value.message
    assert chat_completions.parse_request({**body, "plugins": []}).server_tools == ()


# --- Through the gateway: the refusal is the format's own error, before anything goes upstream ------------
def test_a_field_the_upstream_lacks_is_a_400_naming_it_and_nothing_is_sent(
    gateway_url, funded_key, monkeypatch, client
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "k")
    with anthropic_fake(AnthropicScenario(api_key="k")) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        response = client.post(
            f"{gateway_url}/api/v1/chat/completions",
            headers={"Authorization": f"Bearer {funded_key[1]}"},
            json={"model": "test/anthropic", "messages": [{"role": "user", "content": "Hi"}], "seed": 3},
        )
    assert response.status_code == 400 and fake.requests == []
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "seed")
    assert error["request_id"] == response.headers["x-request-id"]


def test_a_messages_request_with_top_k_reaches_a_fireworks_upstream(
    gateway_url, funded_key, monkeypatch, client
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "k")
    with openai_fake("fireworks", Scenario(text="Hi."), api_key="k") as fake:
        serve_model_from("test/fireworks", [("fireworks", fake.base_url)])
        response = client.post(
            f"{gateway_url}/api/v1/messages",
            headers={"x-api-key": funded_key[1]},
            json={
                "model": "test/fireworks",
                "max_tokens": 50,
                "top_k": 8,
                "messages": [{"role": "user", "content": "Hi"}],
            },
        )
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "Hi."
    assert fake.chat_requests[0].body["top_k"] == 8


@pytest.fixture
def client():
    import httpx

    with httpx.Client(timeout=10) as http:
        yield http


# --- Fields some dialects lack ----------------------------------------------------------------------------
def test_a_strict_tool_is_strict_for_openai_dialects_and_plain_for_anthropic():
    request = ask(tools=[Tool("f", None, {"type": "object"}, strict=True)])
    assert openai_body(request)["tools"][0]["function"]["strict"] is True
    assert "strict" not in anthropic_body(request, ROUTE)["tools"][0]
    assert "strict" not in openai_body(ask(tools=[WEATHER]))["tools"][0]["function"]


def test_a_file_by_url_is_refused_by_openai_dialects_and_sent_to_anthropic_as_a_document():
    url = "https://example.com/report.pdf"
    request = CanonicalRequest(model="m", messages=[Message("user", [FileBlock(file_url=url)])])
    assert refused(openai_body, request).param == "file_url"
    [document] = anthropic_body(request, ROUTE)["messages"][0]["content"]
    assert document == {"type": "document", "source": {"type": "url", "url": url}}


def test_an_anthropic_stop_sequence_reaches_a_messages_client(gateway_url, funded_key, monkeypatch, client):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "k")
    scenario = AnthropicScenario(text="1, 2, 3", stop_reason="stop_sequence", stop_sequence="4", api_key="k")
    with anthropic_fake(scenario, scenario) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        body = {
            "model": "test/anthropic",
            "max_tokens": 50,
            "stop_sequences": ["4"],
            "messages": [{"role": "user", "content": "Count"}],
        }
        headers = {"x-api-key": funded_key[1]}
        message = client.post(f"{gateway_url}/api/v1/messages", headers=headers, json=body).json()
        streamed = client.post(
            f"{gateway_url}/api/v1/messages", headers=headers, json={**body, "stream": True}
        )
    assert fake.requests[0].body["stop_sequences"] == ["4"]
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", "4")
    assert '"stop_reason":"end_turn","stop_sequence":"4"' in streamed.text


# --- Output the gateway cannot give back ----------------------------------------------------------------
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
        ({"modalities": 5}, "modalities"),  # a wrong type is named too, never a 500
    ],
)
def test_chat_output_the_gateway_cannot_render_is_refused(fields, param):
    with pytest.raises(ApiError) as raised:
        chat_completions.parse_request({**CHAT, **fields})
    assert raised.value.param == param


def test_neutral_values_of_those_fields_are_accepted():
    request = chat_completions.parse_request({**CHAT, "n": 1, "logprobs": False, "modalities": ["text"]})
    assert request.extra == {"n": 1, "logprobs": False, "modalities": ["text"]}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"include": "reasoning.encrypted_content"}, "include"),
    ],
)
def test_responses_logprobs_are_refused(fields, param):
    with pytest.raises(ApiError) as raised:
        parse_responses(**fields)
    assert raised.value.param == param


# --- Odd values of unmapped fields: a named refusal or a request, never a crash -------------------------
ODD_VALUES = [5, 1.5, "x", "", [], ["x"], {}, {"a": 1}, None, True, False]
UNMAPPED = [
    "user",
    "safety_identifier",
    "parallel_tool_calls",
    "n",
    "logprobs",
    "top_logprobs",
    "modalities",
    "audio",
    "include",
    "metadata",
    "truncation",
    "background",
    "conversation",
    "prompt",
    "stream_options",
    "max_tool_calls",
    "top_k",
    "seed",
    "service_tier",
]
BASES = {
    chat_completions: CHAT,
    responses: {"model": "m", "input": "Hi"},
    anthropic_messages: {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]},
}


@pytest.mark.parametrize("fmt", list(BASES), ids=lambda fmt: fmt.FORMAT)
def test_any_value_of_an_unmapped_field_is_parsed_or_refused_by_name(fmt):
    for name in UNMAPPED:
        for value in ODD_VALUES:
            try:
                request = fmt.parse_request({**BASES[fmt], name: value})
            except ApiError as refusal:
                assert refusal.code == ErrorCode.INVALID_REQUEST and refusal.param, (name, value)
                continue
            assert request.user is None or isinstance(request.user, str), (name, value)
            for build in (openai_body, lambda r: anthropic_body(r, ROUTE)):
                try:
                    build(request)
                except UpstreamError as refusal:
                    assert refusal.code == ErrorCode.INVALID_REQUEST and refusal.param, (name, value)
