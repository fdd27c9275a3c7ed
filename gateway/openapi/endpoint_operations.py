"""The gateway's other operations: generation metadata, embeddings, token counting, the tokenizer, health
and the document itself."""

import copy
from typing import Any

from gateway.ingress.registry import recorded_format_names
from gateway.openapi.format_operations import MESSAGES_EXAMPLE, PROVIDER_METADATA
from gateway.openapi.parts import (
    INTEGER,
    SANDBOX,
    STRING,
    Operation,
    error_response,
    json_response,
    ref,
    schema_file,
)


def count_tokens() -> Operation:
    body = copy.deepcopy(schema_file("anthropic_messages.request.json"))
    body["required"] = [name for name in body["required"] if name != "max_tokens"]
    return Operation(
        "/api/v1/messages/count_tokens",
        "post",
        {
            "tags": ["Gateway"],
            "operationId": "countMessageTokens",
            "summary": "Count a message's input tokens (Anthropic's count_tokens)",
            "description": "HyperInfer extension: what the Anthropic SDK's `messages.count_tokens()` calls. "
            "The prompt's tokens, free of charge: exact where the model's upstream can count (Anthropic, "
            "llama.cpp), else the gateway's estimate, which errs high. The `x-hyperinfer-token-count` "
            "header says `exact` or `estimate`.",
            "x-hyperinfer-extension": True,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": body,
                        "examples": {
                            "sandbox": {"value": {"model": SANDBOX, "messages": MESSAGES_EXAMPLE["messages"]}}
                        },
                    }
                },
            },
            "responses": {
                "200": json_response(
                    "The count.",
                    {
                        "type": "object",
                        "required": ["input_tokens"],
                        "properties": {"input_tokens": {"type": "integer", "minimum": 0}},
                    },
                ),
                "default": error_response("AnthropicError"),
            },
        },
    )


EMBEDDINGS_EXAMPLE = {"model": "hyperinfer/sandbox-embed", "input": ["The cat sat", "A cat sat"]}
EMBEDDINGS_RESPONSE = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["object", "index", "embedding"],
                "properties": {
                    "object": {"const": "embedding"},
                    "index": {"type": "integer"},
                    "embedding": {
                        "anyOf": [
                            {"type": "array", "items": {"type": "number"}},
                            {"type": "string", "description": "base64 of little-endian float32"},
                        ]
                    },
                },
            },
        },
        "model": {"type": "string"},
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "total_tokens"],
            "properties": {
                "prompt_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
                "cost": {"type": "number", "description": "Credits (USD) charged for the request."},
            },
        },
    },
}


def embeddings() -> Operation:
    return Operation(
        "/api/v1/embeddings",
        "post",
        {
            "tags": ["Gateway"],
            "operationId": "createEmbedding",
            "summary": "Create embeddings (OpenAI's Embeddings format)",
            "description": "HyperInfer extension: what the OpenAI SDK's `embeddings.create()` calls, for the "
            "catalog's embedding models (`kind: embedding` in /api/v1/models). One unit vector per input, "
            "billed by its input tokens (the upstream's count, else the gateway's estimate) and recorded "
            "(`ingress_format: embeddings`). A chat model is refused naming `model`; `dimensions` where the "
            "model's provider can shorten vectors.",
            "x-hyperinfer-extension": True,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": schema_file("embeddings.request.json"),
                        "examples": {"sandbox": {"value": EMBEDDINGS_EXAMPLE}},
                    }
                },
            },
            "responses": {
                "200": json_response("The vectors, in input order.", EMBEDDINGS_RESPONSE),
                "default": error_response("OpenAIError"),
            },
        },
    )


def _tokenizer_operation(
    path: str,
    operation_id: str,
    summary: str,
    field: str,
    field_schema: dict[str, Any],
    answer: dict[str, Any],
) -> Operation:
    request = {
        "type": "object",
        "required": ["model", field],
        "properties": {
            "model": {"type": "string", "minLength": 1, "description": "A catalog slug."},
            field: field_schema,
        },
    }
    return Operation(
        path,
        "post",
        {
            "tags": ["Gateway"],
            "operationId": operation_id,
            "summary": summary,
            "description": "HyperInfer extension in the Jan (llama-cpp-python) spec's shape, for any "
            "model of the catalog, free of charge. Token ids exist where the model's upstream exposes its "
            "tokenizer (llama.cpp); elsewhere tokenize and detokenize are refused naming `model`, and the "
            "count is the gateway's estimate. The `x-hyperinfer-token-count` header says `exact` or "
            "`estimate`.",
            "x-hyperinfer-extension": True,
            "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
            "responses": {
                "200": json_response("The answer.", answer),
                "default": error_response("OpenAIError"),
            },
        },
    )


def tokenize() -> Operation:
    tokens = {"type": "array", "items": {"type": "integer"}}
    return _tokenizer_operation(
        "/api/v1/tokenize", "tokenize", "Tokenize text with a model's tokenizer", "input", {"type": "string"},
        {"type": "object", "required": ["tokens"], "properties": {"tokens": tokens}},
    )  # fmt: skip


def tokenize_count() -> Operation:
    return _tokenizer_operation(
        "/api/v1/tokenize/count", "countTokens", "Count the tokens of a text", "input", {"type": "string"},
        {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer", "minimum": 0}}},
    )  # fmt: skip


def detokenize() -> Operation:
    tokens = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    return _tokenizer_operation(
        "/api/v1/detokenize", "detokenize", "Turn token ids back into text", "tokens", tokens,
        {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    )  # fmt: skip


# The formats the spec names; the gateway's other endpoints are recorded under their own names (extensions).
SPEC_INGRESS_FORMATS = ["chat_completions", "responses", "anthropic_messages"]


def ingress_format_schema() -> dict[str, Any]:
    spec = {"type": "string", "enum": SPEC_INGRESS_FORMATS}
    more = [name for name in recorded_format_names() if name not in SPEC_INGRESS_FORMATS]
    if not more:
        return spec
    extension = {
        "type": "string",
        "enum": more,
        "x-hyperinfer-extension": True,
        "description": "The gateway's endpoints beyond the three formats: legacy completions and others.",
    }
    return {"anyOf": [spec, extension]}


def generation_response() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "object",
                "properties": {
                    "id": STRING,
                    "model": STRING,
                    "ingress_format": ingress_format_schema(),
                    "source": {"type": "string", "enum": ["api", "playground", "chat"]},
                    "tokens_prompt": INTEGER,
                    "tokens_completion": INTEGER,
                    "tokens_reasoning": INTEGER,
                    "tokens_cached_prompt": INTEGER,
                    "total_cost": {"type": "number", "description": "Credits (USD)."},
                    "cost_micro_usd": {"type": "string", "description": "Exact micro-USD, as a string."},
                    "tool_costs_micro_usd": {"type": "object", "additionalProperties": STRING},
                    "provider_metadata": PROVIDER_METADATA,
                    "latency_ms": INTEGER,
                    "status": STRING,
                    "error_code": ref("ErrorCode"),
                    "created_at": STRING,
                },
            }
        },
    }


def generation() -> Operation:
    return Operation(
        "/api/v1/generation",
        "get",
        {
            "tags": ["Metadata"],
            "operationId": "getGeneration",
            "summary": "Get generation metadata",
            "description": "Post-hoc metadata for one of your workspace's requests (002-R9), OpenRouter-"
            "style: model, token breakdown, cost in credits, latency. The id is the `X-Request-Id` response "
            "header (also embedded in response ids).",
            "parameters": [
                {
                    "name": "id",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The request id.",
                }
            ],
            "responses": {
                "200": json_response("Generation metadata.", generation_response()),
                "default": error_response("OpenAIError"),
            },
        },
    )


def healthz() -> Operation:
    alive = {"type": "object", "properties": {"status": {"type": "string", "const": "ok"}}}
    return Operation(
        "/healthz",
        "get",
        {
            "tags": ["Health"],
            "operationId": "getHealthz",
            "summary": "Liveness",
            "description": "Dependency-free liveness check (002-R32).",
            "security": [],
            "responses": {"200": json_response("Alive.", alive)},
        },
    )


def readyz() -> Operation:
    return Operation(
        "/readyz",
        "get",
        {
            "tags": ["Health"],
            "operationId": "getReadyz",
            "summary": "Readiness",
            "description": "Readiness incl. Redis/Postgres checks (002-R32). 503 when degraded.",
            "security": [],
            "responses": {
                "200": json_response("Ready.", ref("Readiness")),
                "503": json_response("Degraded — a dependency is down.", ref("Readiness")),
            },
        },
    )


def metrics() -> Operation:
    return Operation(
        "/metrics",
        "get",
        {
            "tags": ["Health"],
            "operationId": "getMetrics",
            "summary": "Prometheus metrics",
            "description": "For the operator's Prometheus: requests, errors, latencies, tokens and micro-USD "
            "billed, the meter's backlog, in Prometheus' text format. Only with `Authorization: Bearer "
            "<METRICS_TOKEN>` (the deployment's setting, not an API key); a deployment without the setting "
            "has no such endpoint (404).",
            "security": [],
            "responses": {
                "200": {
                    "description": "The metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": error_response(),
                "404": error_response(),
            },
        },
    )


def openapi() -> Operation:
    return Operation(
        "/openapi.json",
        "get",
        {
            "tags": ["Metadata"],
            "operationId": "getOpenApi",
            "summary": "This document",
            "description": "The OpenAPI 3.1 description of this API, generated from the same JSON schemas "
            "that validate requests (002-R42). Cacheable for 5 minutes.",
            "security": [],
            "responses": {"200": json_response("The OpenAPI document.", {"type": "object"})},
        },
    )


# Each ingress format's operation, by its FORMAT name; a registered format without one fails a test.
