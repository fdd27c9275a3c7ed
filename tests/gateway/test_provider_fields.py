"""Provider metadata and controls reach the user (issue 17, item 5; docs/translation.md):
- provider-only fields go only to a dialect whose spec has them (upstreams/extras.py): per dialect, a field
  from another provider's spec is not sent (dropped when harmless, else refused naming it) and a field the
  target has is; a route whose API lacks a field passes the request to the model's next route;
- a Cerebras `reasoning_format` that would mix reasoning into the answer is refused by name;
- `reasoning_effort` "none" and "minimal" (Chat Completions and Responses) and Fireworks' integer and boolean
  efforts, per dialect;
- Cerebras `time_info` and Fireworks `perf_metrics` reach the client as `usage.provider_metadata` in every
  format, streamed and not, and the generation record.
"""

import json

import httpx
import pytest

from core.errors import ApiError, ErrorCode
from gateway.canonical import CanonicalRequest, Message, ReasoningControl, TextBlock, Usage
from gateway.ingress import chat_completions, responses
from gateway.tools.loop import usage_sum
from gateway.upstreams.anthropic_request import build_body as anthropic_body
from gateway.upstreams.base import ProviderInfo, RouteInfo, UpstreamError
from gateway.upstreams.baseten import BasetenAdapter
from gateway.upstreams.cerebras import CerebrasAdapter
from gateway.upstreams.extras import HARMLESS
from gateway.upstreams.fireworks import FireworksAdapter
from gateway.upstreams.llamacpp import LlamaCppAdapter
from gateway.upstreams.openai_compatible import OpenAICompatibleAdapter
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import CEREBRAS_TIME_INFO, fireworks_perf_metrics
from tests.fakes.server import collect_events
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.test_adapter_openai_compatible import dialect_schema

ADAPTERS = {
    "cerebras": CerebrasAdapter(),
    "fireworks": FireworksAdapter(),
    "baseten": BasetenAdapter(),
    "llamacpp": LlamaCppAdapter(),
}
# A field only this dialect's spec has, which changes the answer (refused by the others), and a value.
OWN_FIELD = {
    "cerebras": ("clear_thinking", True),
    "fireworks": ("context_length_exceeded_behavior", "error"),
    "baseten": ("chat_template_args", {"enable_thinking": False}),
    "llamacpp": ("mirostat_mode", 2),
}
# What the adapters set themselves, whatever `extra` holds.
OWN_BODY = {"model", "messages", "stream", "stream_options"}


def ask(**fields) -> CanonicalRequest:
    return CanonicalRequest(model="m", messages=[Message("user", [TextBlock("Why?")])], **fields)


def route_to(dialect: str) -> RouteInfo:
    return RouteInfo(ProviderInfo(dialect, dialect, "http://127.0.0.1:9/v1", "k", 5.0), "upstream-model")


def spec_fields(dialect: str, schema: str) -> frozenset[str]:
    return frozenset(dialect_schema(dialect)["components"]["schemas"][schema]["properties"])


# --- Each dialect's fields are its spec's -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("dialect", "schema", "declared"),
    [
        ("cerebras", "ChatCompletionRequest", CerebrasAdapter.chat_fields),
        ("cerebras", "CompletionRequest", CerebrasAdapter.completion_fields),
        ("fireworks", "ChatCompletionRequest", FireworksAdapter.chat_fields),
        ("baseten", "ChatCompletionRequest", BasetenAdapter.chat_fields),
        ("llamacpp", "CreateChatCompletionRequest", LlamaCppAdapter.chat_fields),
        ("llamacpp", "CreateCompletionRequest", LlamaCppAdapter.completion_fields),
    ],
)
def test_each_dialect_declares_the_request_fields_of_its_spec(dialect, schema, declared):
    assert declared == spec_fields(dialect, schema)


def every_specs_chat_fields() -> list[str]:
    schemas = {"llamacpp": "CreateChatCompletionRequest"}
    names = set()
    for dialect in ADAPTERS:
        names |= spec_fields(dialect, schemas.get(dialect, "ChatCompletionRequest"))
    return sorted(names - OWN_BODY)


@pytest.mark.parametrize("dialect", list(ADAPTERS))
def test_a_field_of_any_spec_reaches_a_dialect_only_if_its_spec_has_it(dialect):
    adapter, route = ADAPTERS[dialect], route_to(dialect)
    for name in every_specs_chat_fields():
        value = {"reasoning_format": "hidden", "n": 1}.get(name, 2)
        request = ask(extra={name: value})
        if name in (adapter.chat_fields or ()):
            assert adapter.build_body(request, route)[name] == value, name
        elif name in HARMLESS["openai"]:
            assert name not in adapter.build_body(request, route), name
        else:
            with pytest.raises(UpstreamError) as refused:
                adapter.build_body(request, route)
            assert (refused.value.code, refused.value.param) == (ErrorCode.INVALID_REQUEST, name)
            assert refused.value.message.startswith(f"{name}: this model's provider ({adapter.label})")


@pytest.mark.parametrize("dialect", list(ADAPTERS))
def test_over_http_a_field_of_another_spec_is_not_sent_and_one_the_target_has_is(dialect):
    own, value = OWN_FIELD[dialect]
    harmless = {"prompt_cache_key": "conv-1", "perf_metrics_in_response": True, "service_tier": "auto"}
    with openai_fake(dialect) as fake:  # Cerebras', Fireworks' and Baseten's fakes refuse unknown fields
        collect_events(ADAPTERS[dialect], ask(extra={own: value, **harmless}), fake.route())
        body, sent_so_far = fake.chat_requests[0].body, len(fake.requests)
        assert body[own] == value
        for name, sent in harmless.items():
            assert (name in body) == (name in ADAPTERS[dialect].chat_fields), name
            assert body.get(name, sent) == sent
        for other, (field, foreign) in OWN_FIELD.items():
            if other != dialect:
                with pytest.raises(UpstreamError) as refused:
                    collect_events(ADAPTERS[dialect], ask(extra={field: foreign}), fake.route())
                assert refused.value.param == field
        assert len(fake.requests) == sent_so_far  # nothing was sent for a refused field


def test_cerebras_only_fields_no_longer_reach_fireworks_or_baseten_whose_schemas_are_closed():
    cerebras_only = {"disable_reasoning": True, "clear_thinking": True, "min_completion_tokens": 9}
    for dialect in ("fireworks", "baseten"):
        for name, value in cerebras_only.items():
            with pytest.raises(UpstreamError) as refused:
                ADAPTERS[dialect].build_body(ask(extra={name: value}), route_to(dialect))
            assert refused.value.param == name


def test_the_generic_dialect_and_anthropic_take_any_field_of_their_family():
    extra = {"clear_thinking": True, "raw_output": True, "chat_template_args": {}, "vendor_knob": 1}
    assert extra.items() <= OpenAICompatibleAdapter().build_body(ask(extra=extra), route_to("x")).items()
    anthropic = {"container": "c-1", "vendor_knob": 1}
    body = anthropic_body(ask(extra=anthropic, extra_family="anthropic"), route_to("anthropic"))
    assert anthropic.items() <= body.items()


def test_a_text_completion_takes_the_fields_of_the_dialects_completions_schema():
    prompt = {"raw_prompt": "Once", "messages": [Message("user", [TextBlock("Once")])]}
    cerebras, llamacpp = CerebrasAdapter(), LlamaCppAdapter()
    raw = CanonicalRequest(model="m", extra={"grammar_root": "root", "suffix": "."}, **prompt)
    assert cerebras.build_body(raw, route_to("cerebras"))["grammar_root"] == "root"
    with pytest.raises(UpstreamError) as refused:
        llamacpp.build_body(raw, route_to("llamacpp"))  # Jan's completions have `grammar`, not `grammar_root`
    assert refused.value.param == "grammar_root"
    grammar = CanonicalRequest(model="m", extra={"grammar": "root ::= x"}, **prompt)
    assert llamacpp.build_body(grammar, route_to("llamacpp"))["grammar"] == "root ::= x"


# --- Cerebras' reasoning_format ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["parsed", "text_parsed", "hidden"])
def test_a_reasoning_format_that_keeps_reasoning_out_of_the_text_is_sent_to_cerebras(value):
    body = CerebrasAdapter().build_body(ask(extra={"reasoning_format": value}), route_to("cerebras"))
    assert body["reasoning_format"] == value


@pytest.mark.parametrize("value", ["raw", "none", 3])
def test_a_reasoning_format_that_would_break_reasoning_parsing_is_refused_by_name(value):
    with pytest.raises(UpstreamError) as refused:
        CerebrasAdapter().build_body(ask(extra={"reasoning_format": value}), route_to("cerebras"))
    assert (refused.value.code, refused.value.param) == (ErrorCode.INVALID_REQUEST, "reasoning_format")


# --- reasoning_effort: none, minimal, Fireworks' integer and boolean forms ---------------------------------
def chat(**fields) -> CanonicalRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "Why?"}], **fields}
    return chat_completions.parse_request(body)


@pytest.mark.parametrize(
    ("effort", "control"),
    [
        ("none", ReasoningControl(enabled=False)),
        ("minimal", ReasoningControl(effort="minimal")),
        ("high", ReasoningControl(effort="high")),
        (True, ReasoningControl(enabled=True)),
        (False, ReasoningControl(enabled=False)),
        (512, ReasoningControl(enabled=True, budget_tokens=512)),
        (2048.0, ReasoningControl(enabled=True, budget_tokens=2048)),
    ],
)
def test_chat_reasoning_effort_takes_none_minimal_and_fireworks_forms(effort, control):
    assert chat(reasoning_effort=effort).reasoning == control


@pytest.mark.parametrize(
    ("effort", "control"),
    [("none", ReasoningControl(enabled=False)), ("minimal", ReasoningControl(effort="minimal"))],
)
def test_responses_reasoning_effort_takes_none_and_minimal(effort, control):
    request = responses.parse_request({"model": "m", "input": "Why?", "reasoning": {"effort": effort}})
    assert request.reasoning == control


@pytest.mark.parametrize("effort", [0, "extreme", 1.5])
def test_other_efforts_are_refused_naming_the_field(effort):
    with pytest.raises(ApiError) as refused:
        chat(reasoning_effort=effort)
    assert refused.value.param == "reasoning_effort"


REASONING_KEYS = ("reasoning_effort", "disable_reasoning", "thinking")
EXPECTED = {  # what each dialect is sent for: none, minimal, 512, 4096, true, false
    "cerebras": [
        {"disable_reasoning": True},
        {"reasoning_effort": "low"},
        {"reasoning_effort": "low"},
        {"reasoning_effort": "medium"},
        {"disable_reasoning": False},
        {"disable_reasoning": True},
    ],
    "fireworks": [
        {"reasoning_effort": "none"},
        {"reasoning_effort": "low"},
        {"reasoning_effort": 512},
        {"thinking": {"type": "enabled", "budget_tokens": 4096}},
        {"thinking": {"type": "enabled"}},
        {"reasoning_effort": "none"},
    ],
    "openai_compatible": [
        {"reasoning_effort": "none"},
        {"reasoning_effort": "minimal"},
        {"reasoning_effort": "low"},
        {"reasoning_effort": "medium"},
        {},
        {"reasoning_effort": "none"},
    ],
    "baseten": [{}] * 6,
    "llamacpp": [{}] * 6,
}
EFFORTS = ["none", "minimal", 512, 4096, True, False]


@pytest.mark.parametrize("dialect", list(EXPECTED))
def test_each_openai_dialect_maps_none_minimal_and_fireworks_efforts(dialect):
    adapter = ADAPTERS.get(dialect) or OpenAICompatibleAdapter()
    for effort, expected in zip(EFFORTS, EXPECTED[dialect], strict=True):
        body = adapter.build_body(chat(reasoning_effort=effort), route_to(dialect))
        assert {key: body[key] for key in REASONING_KEYS if key in body} == expected, effort


def test_anthropic_turns_thinking_off_for_none_and_gives_minimal_the_smallest_budget():
    route = route_to("anthropic")
    thinking = [anthropic_body(chat(reasoning_effort=effort), route).get("thinking") for effort in EFFORTS]
    enabled = [None if each is None else each["budget_tokens"] for each in thinking]
    assert enabled == [None, 1024, 1024, 4096, 4096, None]


# --- Through the gateway -----------------------------------------------------------------------------------
@pytest.fixture
def client():
    with httpx.Client(timeout=10) as http:
        yield http


def post(client, url: str, key: str, path: str, body: dict) -> httpx.Response:
    return client.post(f"{url}{path}", headers={"Authorization": f"Bearer {key}"}, json=body)


CHAT = "/api/v1/chat/completions"
HI = [{"role": "user", "content": "Hi"}]


def test_a_foreign_field_is_a_400_naming_it_and_a_harmless_one_is_dropped(
    gateway_url, funded_key, monkeypatch, client
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    with openai_fake("fireworks", Scenario(text="Hi.")) as fake:
        serve_model_from("test/fireworks", [("fireworks", fake.base_url)])
        refused = post(client, gateway_url, funded_key[1], CHAT, {"model": "test/fireworks", "messages": HI,
                                                                   "clear_thinking": True})  # fmt: skip
        assert refused.status_code == 400 and fake.requests == []
        assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == (
            "invalid_request",
            "clear_thinking",
        )
        body = {"model": "test/fireworks", "messages": HI, "prompt_cache_key": "c", "reasoning_effort": 512}
        served = post(client, gateway_url, funded_key[1], CHAT, body)
        assert served.status_code == 200, served.text
        sent = fake.chat_requests[0].body
        assert "prompt_cache_key" not in sent and sent["reasoning_effort"] == 512


def test_a_route_whose_api_lacks_a_field_passes_the_request_to_the_next_route(
    gateway_url, funded_key, monkeypatch, client
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    with openai_fake("fireworks") as fireworks, openai_fake("cerebras", Scenario(text="Hi.")) as cerebras:
        serve_model_from("test/two", [("fireworks", fireworks.base_url), ("cerebras", cerebras.base_url)])
        body = {"model": "test/two", "messages": HI, "clear_thinking": True}
        response = post(client, gateway_url, funded_key[1], CHAT, body)
        assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Hi."
        assert fireworks.requests == [] and cerebras.chat_requests[0].body["clear_thinking"] is True
        raw = {"model": "test/two", "messages": HI, "reasoning_format": "raw"}
        refused = post(client, gateway_url, funded_key[1], CHAT, raw)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "reasoning_format"
        assert len(cerebras.requests) == 1  # the first refusal is the client's answer


FORMATS = {
    "chat": (CHAT, {"messages": HI}),
    "responses": ("/api/v1/responses", {"input": "Hi"}),
    "messages": ("/api/v1/messages", {"messages": HI, "max_tokens": 50}),
    "completions": ("/api/v1/completions", {"prompt": "Once"}),
}
METADATA = {
    "cerebras": {"cerebras": {"time_info": CEREBRAS_TIME_INFO}},
    "fireworks": {"fireworks": {"perf_metrics": fireworks_perf_metrics(Scenario())}},
}


def final_usage(fmt: str, response: httpx.Response, stream: bool) -> dict:
    """The usage the client got: in the answer, or in the stream's last usage-carrying event."""
    if not stream:
        return response.json()["usage"]
    frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    events = [json.loads(data) for data in frames if data != "[DONE]"]
    if fmt == "responses":
        return next(e["response"]["usage"] for e in events if e["type"] == "response.completed")
    if fmt == "messages":
        return next(e["usage"] for e in events if e["type"] == "message_delta")
    return events[-1]["usage"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("dialect", "fmt"),
    # Every format to each dialect; Fireworks has no completions endpoint (test_completions.py refuses it).
    [(d, f) for d in METADATA for f in FORMATS if not (f == "completions" and d == "fireworks")],
)
def test_provider_metadata_reaches_the_client_in_every_format_and_the_generation_record(
    dialect, fmt, stream, gateway_url, funded_key, monkeypatch, client
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    path, fields = FORMATS[fmt]
    with openai_fake(dialect, Scenario(text="Hi there.")) as fake:
        serve_model_from(f"test/{dialect}", [(dialect, fake.base_url)])
        body = {"model": f"test/{dialect}", "stream": stream, **fields}
        response = post(client, gateway_url, funded_key[1], path, body)
    assert response.status_code == 200, response.text
    assert final_usage(fmt, response, stream)["provider_metadata"] == METADATA[dialect]
    record = client.get(
        f"{gateway_url}/api/v1/generation",
        params={"id": response.headers["x-request-id"]},
        headers={"Authorization": f"Bearer {funded_key[1]}"},
    )
    assert record.status_code == 200, record.text
    assert record.json()["data"]["provider_metadata"] == METADATA[dialect]


def test_over_server_tool_steps_each_dialects_latest_report_stands():
    first = Usage(10, 2, provider_metadata={"cerebras": {"time_info": {"total_time": 0.1}}})
    second = Usage(20, 3, provider_metadata={"cerebras": {"time_info": {"total_time": 0.3}}})
    assert usage_sum(first, second) == Usage(30, 5, provider_metadata=second.provider_metadata)
    assert usage_sum(first, Usage(1, 1)).provider_metadata == first.provider_metadata
    assert usage_sum(Usage(1, 1), Usage(1, 1)).provider_metadata is None


def test_the_generation_row_keeps_the_provider_metadata(gateway_url, funded_key, sql_meter, client):
    with openai_fake("cerebras") as fake:
        serve_model_from("test/cerebras", [("cerebras", fake.base_url)])
        response = post(client, gateway_url, funded_key[1], CHAT, {"model": "test/cerebras", "messages": HI})
    generation = settled_generation(response.headers["x-request-id"])
    assert generation.provider_metadata == METADATA["cerebras"]
    without = post(client, gateway_url, funded_key[1], CHAT, {"model": "hyperinfer/sandbox", "messages": HI})
    assert "provider_metadata" not in without.json()["usage"]
    assert settled_generation(without.headers["x-request-id"]).provider_metadata == {}
