"""Fireworks: `reasoning_content`, string efforts and `thinking`, a closed request schema, usage unasked."""

import pytest

from gateway.canonical import (
    BlockStart,
    CanonicalRequest,
    Message,
    ReasoningBlock,
    ReasoningControl,
    ReasoningDelta,
    TextBlock,
    Usage,
)
from gateway.upstreams.fireworks import FireworksAdapter
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import fireworks_perf_metrics
from tests.fakes.server import collect_events


def ask(reasoning: ReasoningControl | None = None) -> CanonicalRequest:
    return CanonicalRequest(
        model="m", messages=[Message("user", [TextBlock("Why?")])], reasoning=reasoning, stream=True
    )


def run(request: CanonicalRequest, scenario: Scenario | None = None) -> tuple[list, dict]:
    with openai_fake("fireworks", scenario) as fake:
        events = collect_events(FireworksAdapter(), request, fake.route())
        assert fake.chat_requests[0].path == "/inference/v1/chat/completions"
        return events, fake.chat_requests[0].body


def test_reasoning_content_deltas_become_a_reasoning_block_and_usage_comes_with_the_finish_chunk():
    events, body = run(
        ask(ReasoningControl(effort="low")), Scenario(reasoning="Hmm.", text="Yes.", cached_tokens=2)
    )
    assert events[:2] == [BlockStart(0, "reasoning"), ReasoningDelta(0, "Hmm.")]
    perf_metrics = {"fireworks": {"perf_metrics": fireworks_perf_metrics(Scenario())}}
    assert events[-1] == Usage(
        prompt_tokens=12, completion_tokens=7, cached_prompt_tokens=2, provider_metadata=perf_metrics
    )
    assert body["perf_metrics_in_response"] is True  # asked for always: a few numbers in the last chunk
    assert "stream_options" not in body  # not in Fireworks' closed schema; it sends usage regardless


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        (ReasoningControl(effort="high"), {"reasoning_effort": "high"}),
        (ReasoningControl(enabled=False), {"reasoning_effort": "none"}),
        (ReasoningControl(budget_tokens=4096), {"thinking": {"type": "enabled", "budget_tokens": 4096}}),
        (ReasoningControl(budget_tokens=200), {"reasoning_effort": 200}),  # below thinking's minimum
        (
            ReasoningControl(effort="low", budget_tokens=2000),
            {"thinking": {"type": "enabled", "budget_tokens": 2000}},
        ),
        (ReasoningControl(enabled=True), {"thinking": {"type": "enabled"}}),
        (None, {}),
    ],
)
def test_reasoning_controls_map_to_one_of_reasoning_effort_or_thinking(control, expected):
    _, body = run(ask(control))  # the fake refuses both together, as the spec says
    assert {k: body[k] for k in ("reasoning_effort", "thinking") if k in body} == expected


def test_history_reasoning_goes_back_as_reasoning_content_and_names_are_dropped():
    request = ask()
    request.messages[0].name = "alice"  # Fireworks messages take no name (closed schema)
    request.messages += [
        Message("assistant", [ReasoningBlock("Thought."), TextBlock("Answer.")]),
        Message("user", [TextBlock("Again?")]),
    ]
    request.extra = {"perf_metrics_in_response": False, "context_length_exceeded_behavior": "error"}
    events, body = run(request)
    assert body["messages"][0] == {"role": "user", "content": "Why?"}
    assert body["messages"][1] == {"role": "assistant", "content": "Answer.", "reasoning_content": "Thought."}
    assert body["context_length_exceeded_behavior"] == "error"
    assert events[-1] == Usage(prompt_tokens=12, completion_tokens=7)  # the client's `false` stands
