"""The ingress formats' operations: one builder per format, keyed by its FORMAT in FORMAT_OPERATIONS
(gateway/openapi/__init__.py)."""

from typing import Any

from gateway.openapi.parts import (
    SANDBOX,
    Operation,
    error_response,
    ref,
    request_body,
    sse_event,
)

CHAT_EXAMPLE = {"model": SANDBOX, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}
RESPONSES_EXAMPLE = {"model": SANDBOX, "input": "Say hello.", "max_output_tokens": 64}
COMPLETIONS_EXAMPLE = {"model": SANDBOX, "prompt": "Once upon a time", "max_tokens": 64}
MESSAGES_EXAMPLE = {
    "model": SANDBOX,
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello."}],
}


# The events each format's stream names (chat's carry no name: "message").
RESPONSES_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
]
MESSAGES_EVENTS = [
    "message_start",
    "ping",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "error",
]


PROVIDER_METADATA = {
    "type": "object",
    "description": "HyperInfer extension: the provider's own report of the answer, under its dialect's name "
    "and in the provider's shape, when it sent one: Cerebras' `time_info` (queue_time, prompt_time, "
    'completion_time, total_time), Fireworks\' `perf_metrics` (e.g. `{"fireworks": {"perf_metrics": '
    '{"server-time-to-first-token": 0.1}}}`). Streamed, it rides on the final usage.',
    "additionalProperties": {"type": "object"},
    "x-hyperinfer-extension": True,
}


def _with_provider_metadata(component: str) -> dict[str, Any]:
    """A format's answer: the spec's schema, plus `usage.provider_metadata` (an extension)."""
    usage = {"type": "object", "properties": {"provider_metadata": PROVIDER_METADATA}}
    extension = {
        "type": "object",
        "description": "HyperInfer extension: the provider's metadata in `usage.provider_metadata`.",
        "properties": {"usage": usage},
        "x-hyperinfer-extension": True,
    }
    return {"allOf": [ref(component), extension]}


def chat_completions() -> Operation:
    return Operation(
        "/api/v1/chat/completions",
        "post",
        {
            "tags": ["Gateway"],
            "operationId": "createChatCompletion",
            "summary": "Create a chat completion (OpenAI Chat Completions format)",
            "description": "OpenAI Chat Completions ingress. Works with every model in the catalog via "
            "any-to-any translation (002-R5). Server tools activate via the OpenRouter-style top-level "
            "`plugins` array (002-R11).",
            "requestBody": {
                "required": True,
                "content": {"application/json": request_body("chat_completions.request.json", CHAT_EXAMPLE)},
            },
            "responses": {
                "200": {
                    "description": "The completion. With `stream: true`, an SSE stream instead "
                    "(see the text/event-stream variant).",
                    "content": {
                        "application/json": {"schema": _with_provider_metadata("ChatCompletionResponse")},
                        "text/event-stream": {
                            "schema": sse_event(
                                "SSE stream of `chat.completion.chunk` objects (`data:` "
                                "frames): a role frame, then content/reasoning/tool_call deltas, a "
                                "finish_reason frame, a final usage-only chunk (always emitted — "
                                "stream_options.include_usage semantics, 002-R8), and `data: [DONE]`. "
                                "Keep-alive comments every 15 s.",
                                None,
                            )
                        },
                    },
                },
                "default": error_response("OpenAIError"),
            },
        },
    )


TEXT_COMPLETION = {
    "type": "object",
    "x-hyperinfer-extension": True,
    "description": "A legacy text completion, as OpenAI's Completions API answers it.",
    "required": ["id", "object", "created", "model", "choices", "usage"],
    "properties": {
        "id": {"type": "string", "description": "cmpl-<request id>."},
        "object": {"const": "text_completion"},
        "created": {"type": "integer", "description": "Unix seconds."},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "index", "finish_reason"],
                "properties": {
                    "text": {"type": "string"},
                    "index": {"type": "integer"},
                    "logprobs": {"type": "null"},
                    "finish_reason": {"type": "string", "enum": ["stop", "length", "content_filter"]},
                },
            },
        },
        "usage": {
            "allOf": [
                ref("ChatCompletionsUsage"),
                {"type": "object", "properties": {"provider_metadata": PROVIDER_METADATA}},
            ]
        },
    },
}


def completions() -> Operation:
    return Operation(
        "/api/v1/completions",
        "post",
        {
            "tags": ["Gateway"],
            "operationId": "createCompletion",
            "summary": "Create a text completion (OpenAI's legacy Completions format)",
            "description": "HyperInfer extension: the prompt goes to the model's upstream as it is, with no "
            "chat template, for models with a completions endpoint (Cerebras, llama.cpp/Jan, "
            "OpenAI-compatible servers, the sandbox); for others `invalid_request` naming `model`. Metered "
            "and recorded like the chat formats (`ingress_format: completions`).",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": request_body("completions.request.json", COMPLETIONS_EXAMPLE)
                },
            },
            "responses": {
                "200": {
                    "description": "The completion. With `stream: true`, an SSE stream instead.",
                    "content": {
                        "application/json": {"schema": TEXT_COMPLETION},
                        "text/event-stream": {
                            "schema": sse_event(
                                "SSE stream of `text_completion` chunks (`data:` frames) with "
                                "`choices[0].text`, a finish_reason frame, a final usage-only chunk "
                                "(always), and `data: [DONE]`. Keep-alive comments every 15 s.",
                                None,
                            )
                        },
                    },
                },
                "default": error_response("OpenAIError"),
            },
        },
    )


def responses() -> Operation:
    return Operation(
        "/api/v1/responses",
        "post",
        {
            "tags": ["Gateway"],
            "operationId": "createResponse",
            "summary": "Create a response (OpenAI Responses format)",
            "description": "OpenAI Responses ingress. Stateless: `previous_response_id` is rejected "
            "explicitly \u2014 send the full input. Server tools activate as built-in tools "
            '(`tools: [{ type: "web_search" }, \u2026]`).',
            "requestBody": {
                "required": True,
                "content": {"application/json": request_body("responses.request.json", RESPONSES_EXAMPLE)},
            },
            "responses": {
                "200": {
                    "description": "The response object. With `stream: true`, an SSE stream instead.",
                    "content": {
                        "application/json": {"schema": _with_provider_metadata("ResponsesResponse")},
                        "text/event-stream": {
                            "schema": sse_event(
                                "Semantic SSE event protocol (`event:` + `data:` frames): "
                                "`response.created` / `response.in_progress`, then per-item events "
                                "(`response.output_item.added`, `response.output_text.delta`, "
                                "`response.function_call_arguments.delta`, matching `*.done` events), ending "
                                "with `response.completed` carrying the full response incl. usage (002-R8). "
                                "Keep-alive comments every 15 s.",
                                RESPONSES_EVENTS,
                            )
                        },
                    },
                },
                "default": error_response("OpenAIError"),
            },
        },
    )


def messages() -> Operation:
    return Operation(
        "/api/v1/messages",
        "post",
        {
            "tags": ["Gateway"],
            "operationId": "createMessage",
            "summary": "Create a message (Anthropic Messages format)",
            "description": "Anthropic Messages ingress. Server tools activate via the top-level `plugins` "
            "array (HyperInfer extension, same idiom as chat completions). `response_format` has no "
            "Anthropic equivalent and is rejected explicitly.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": request_body("anthropic_messages.request.json", MESSAGES_EXAMPLE)
                },
            },
            "responses": {
                "200": {
                    "description": "The message. With `stream: true`, an SSE stream instead.",
                    "content": {
                        "application/json": {"schema": _with_provider_metadata("AnthropicMessageResponse")},
                        "text/event-stream": {
                            "schema": sse_event(
                                "Anthropic content-block SSE protocol (`event:` + `data:` "
                                "frames): `message_start`, then `content_block_start` / "
                                "`content_block_delta` / `content_block_stop` per block (text_delta, "
                                "thinking_delta, input_json_delta), `message_delta` with stop_reason + usage "
                                "(002-R8), and `message_stop`. Keep-alive comments every 15 s.",
                                MESSAGES_EVENTS,
                            )
                        },
                    },
                },
                "default": error_response("AnthropicError"),
            },
        },
    )
