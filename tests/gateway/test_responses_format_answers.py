"""The OpenAI Responses format on its own: events → SSE frames and the response object, and its errors.

The request side is in test_responses_format.py; its helpers are imported from there."""

import json

import pytest

from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    Finish,
    Message,
    ReasoningBlock,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.fold import Folded
from gateway.ingress import responses
from tests.gateway.test_responses_format import MODEL, parse


# --- Response object (the fold) -----------------------------------------------------------
def folded(*events) -> Folded:
    result = Folded()
    for event in events:
        result.add(event)
    return result


def test_the_response_object_lists_reasoning_message_then_function_calls():
    answer = folded(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Think."),
        BlockStart(1, "text"),
        TextDelta(1, "Calling."),
        BlockStart(2, "tool_call", tool_call_id="call_a", tool_name="weather"),
        ToolCallDelta(2, '{"city":'),
        ToolCallDelta(2, '"Paris"}'),
        Finish("tool_calls"),
    )
    usage = Usage(prompt_tokens=10, completion_tokens=5, cached_prompt_tokens=4, reasoning_tokens=2)
    body = responses.response_object(
        request_id="abc", model=MODEL, created=1700, folded=answer, usage=usage, cost_usd=0.0012
    )
    assert body["id"] == "resp_abc" and body["object"] == "response" and body["created_at"] == 1700
    assert body["status"] == "completed" and body["incomplete_details"] is None and body["error"] is None
    assert body["output"] == [
        {"id": "rs_abc_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Think."}]},
        {
            "id": "msg_abc_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Calling.", "annotations": []}],
        },
        {
            "id": "fc_abc_2",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_a",
            "name": "weather",
            "arguments": '{"city":"Paris"}',
        },
    ]
    assert body["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
        "cost": 0.0012,
    }


@pytest.mark.parametrize(
    ("reason", "why"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_cut_answer_is_incomplete_with_its_reason(reason, why):
    answer = folded(TextDelta(0, "Hel"), Finish(reason))
    body = responses.response_object(
        request_id="r", model=MODEL, created=1, folded=answer, usage=Usage(3, 1), cost_usd=0.0
    )
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": why}
    assert [item["type"] for item in body["output"]] == ["message"]


# --- Stream -------------------------------------------------------------------------------
def frames_of(chunks: list[bytes]) -> list[dict]:
    """Each frame as its data object, checking the `event:` line names the data's type."""
    events = []
    for chunk in chunks:
        assert chunk.endswith(b"\n\n")
        event_line, data_line = chunk.decode().strip("\n").split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        events.append(data)
    return events


USAGE = Usage(8, 6, reasoning_tokens=2)


def run_stream(*events, usage: Usage = USAGE) -> list[dict]:
    renderer = responses.stream_renderer(request_id="req1", model=MODEL)
    chunks = renderer.start()
    for event in events:
        chunks += renderer.render(event)
    chunks += renderer.finish(usage, 0.5)
    return frames_of(chunks)


def test_a_stream_announces_opens_fills_and_closes_each_item_in_order():
    events = run_stream(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Hm"),
        ReasoningDelta(0, "m."),
        BlockStop(0),
        BlockStart(1, "text"),
        TextDelta(1, "Hi"),
        TextDelta(1, " you"),
        BlockStart(2, "tool_call", tool_call_id="call_x", tool_name="lookup"),
        ToolCallDelta(2, '{"q":'),
        ToolCallDelta(2, "1}"),
        BlockStop(2),
        Finish("tool_calls"),
    )
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",  # closed because the next block starts
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert created["id"] == "resp_req1" and created["status"] == "in_progress" and created["output"] == []
    assert events[2]["item"] == {"id": "rs_req1_0", "type": "reasoning", "summary": []}
    assert events[6] == {
        "type": "response.reasoning_summary_text.done",
        "sequence_number": 6,
        "item_id": "rs_req1_0",
        "output_index": 0,
        "summary_index": 0,
        "text": "Hmm.",
    }
    assert events[9]["item"]["status"] == "in_progress" and events[9]["item"]["content"] == []
    assert events[11]["item_id"] == "msg_req1_1" and events[11]["output_index"] == 1
    assert (events[11]["content_index"], events[11]["delta"]) == (0, "Hi")
    assert events[13]["text"] == "Hi you"
    assert events[16]["item"]["call_id"] == "call_x" and events[16]["item"]["arguments"] == ""
    assert events[19]["arguments"] == '{"q":1}' and events[19]["item_id"] == "fc_req1_2"
    completed = events[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == [events[8]["item"], events[15]["item"], events[20]["item"]]
    assert [item["id"] for item in completed["output"]] == ["rs_req1_0", "msg_req1_1", "fc_req1_2"]
    assert completed["output"][1]["content"][0]["text"] == "Hi you"
    assert completed["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    assert completed["usage"]["total_tokens"] == 14 and completed["usage"]["cost"] == 0.5


def test_a_stream_cut_by_length_ends_with_response_incomplete():
    events = run_stream(BlockStart(0, "text"), TextDelta(0, "Hel"), Finish("length"))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["status"] == "incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["type"] == "response.output_item.done"  # the open item is closed first


def test_an_empty_block_yields_no_item():
    events = run_stream(BlockStart(0, "reasoning"), BlockStop(0), BlockStart(1, "text"), BlockStop(1))
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert events[-1]["response"]["output"] == []


def test_a_thinking_signature_streams_into_the_reasoning_items_encrypted_content():
    events = run_stream(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Hmm."),
        ReasoningDelta(0, "", signature="sig-1"),
        BlockStop(0),
        Finish("stop"),
    )
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"] == {
        "id": "rs_req1_0",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Hmm."}],
        "encrypted_content": "anthropic.thinking:sig-1",
    }
    assert events[-1]["response"]["output"] == [done["item"]]


def test_a_redacted_block_is_a_reasoning_item_with_no_summary_and_its_data():
    events = run_stream(
        BlockStart(0, "reasoning"), ReasoningDelta(0, "", signature="opaque", redacted=True), BlockStop(0)
    )
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[3]["item"]["summary"] == []
    assert events[3]["item"]["encrypted_content"] == "anthropic.redacted:opaque"


def test_the_fold_keeps_the_signature_and_the_request_side_reads_it_back():
    answer = folded(
        BlockStart(0, "reasoning"), ReasoningDelta(0, "Think."), ReasoningDelta(0, "", signature="s9")
    )
    body = responses.response_object(
        request_id="r", model=MODEL, created=1, folded=answer, usage=USAGE, cost_usd=0.0
    )
    [item] = body["output"]
    request = parse(input=[{"role": "user", "content": "Hi"}, item, {"role": "user", "content": "More"}])
    assert request.messages[1] == Message("assistant", [ReasoningBlock("Think.", signature="s9")])


def test_a_redacted_item_and_a_foreign_encrypted_content_read_back():
    redacted = {"type": "reasoning", "summary": [], "encrypted_content": "anthropic.redacted:xyz"}
    foreign = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAB-openai-state"}
    request = parse(input=[redacted, foreign, {"role": "user", "content": "Hi"}])
    assert request.messages[0] == Message(
        "assistant", [ReasoningBlock("", signature="xyz", redacted=True)]
    )  # the foreign state means nothing to any upstream of ours, and its empty summary carries nothing
    assert [m.role for m in request.messages] == ["assistant", "user"]


def test_an_error_mid_stream_is_an_error_event_then_response_failed():
    renderer = responses.stream_renderer(request_id="req2", model=MODEL)
    chunks = renderer.start() + renderer.render(BlockStart(0, "text")) + renderer.render(TextDelta(0, "Hi"))
    chunks += renderer.error(ErrorCode.PROVIDER_RATE_LIMIT, "slow down")
    events = frames_of(chunks)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-2] == {
        "type": "error",
        "sequence_number": len(events) - 2,
        "code": "provider_rate_limit",
        "message": "slow down",
        "param": None,
    }
    failed = events[-1]["response"]
    assert events[-1]["type"] == "response.failed" and failed["status"] == "failed"
    assert failed["error"] == {"code": "provider_rate_limit", "message": "slow down"}
    assert failed["output"][0]["id"] == "msg_req2_0" and failed["output"][0]["status"] == "incomplete"
    assert not any(chunk.startswith(b"data: [DONE]") for chunk in chunks)


def test_errors_use_the_openai_envelope():
    body = responses.error_body(ErrorCode.INVALID_API_KEY, "bad key", "rid")
    assert body == {
        "error": {
            "message": "bad key",
            "type": "authentication_error",
            "code": "invalid_api_key",
            "param": None,
            "request_id": "rid",
        }
    }


def test_each_reasoning_block_is_an_item_of_its_own_with_its_state():
    answer = folded(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "", signature="opaque", redacted=True),
        BlockStart(1, "reasoning"),
        ReasoningDelta(1, "Hmm."),
        ReasoningDelta(1, "", signature="sig-2"),
        BlockStart(2, "text"),
        TextDelta(2, "Hi."),
    )
    body = responses.response_object(
        request_id="r", model=MODEL, created=1, folded=answer, usage=USAGE, cost_usd=0.0
    )
    assert [(item["id"], item["summary"], item.get("encrypted_content")) for item in body["output"][:2]] == [
        ("rs_r_0", [], "anthropic.redacted:opaque"),
        ("rs_r_1", [{"type": "summary_text", "text": "Hmm."}], "anthropic.thinking:sig-2"),
    ]
    assert body["output"][2]["type"] == "message"
