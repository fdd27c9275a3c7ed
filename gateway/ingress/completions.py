"""OpenAI's legacy text completions (`POST /api/v1/completions`, `client.completions.create`): a raw prompt,
no chat template, answered as `text_completion` objects.

The prompt rides in the canonical request as `raw_prompt` (and as one user turn, for the estimates), so the
rest of the pipeline is the chat formats': admission, metering, fallback, disconnects. Only upstreams with a
completions endpoint serve it (`UpstreamAdapter.completes_text`); a model with none among its configured
routes is refused naming `model` before anything is reserved (gateway/admission.py).
Streamed: `text_completion` chunks with `choices[0].text`, a finish chunk, a final usage-only chunk
(always, as Chat Completions does here), then `data: [DONE]`.
"""

import time
from typing import Any

from core.envelopes import openai_error_body as error_body
from core.errors import ApiError, ErrorCode
from gateway.canonical import CanonicalRequest, Event, Finish, Message, TextBlock, TextDelta, Usage
from gateway.fold import Folded
from gateway.ingress.chat_completions import DONE, frame, usage_object
from gateway.ingress.validation import load_validator, refuse_unrenderable, token_count, validate_or_raise

FORMAT = "completions"
PROMPT_FIELD = "prompt"
PATH = "/api/v1/completions"
LABEL = "OpenAI Completions (legacy)"
REQUEST_VALIDATOR = load_validator("completions.request.json")
_MAPPED = frozenset(
    {"model", "prompt", "max_tokens", "temperature", "top_p", "stop", "stream", "stream_options", "user"}
)
# Validated here and not sent on: their only allowed values ask for the default.
_DEFAULTS_ONLY = frozenset({"n", "best_of", "logprobs"})


def parse_request(body: dict[str, Any]) -> CanonicalRequest:
    # Several choices or log probabilities first, for a message that says why (the schema allows none).
    refuse_unrenderable(body)
    if body.get("best_of") not in (None, 1):
        raise ApiError(
            ErrorCode.INVALID_REQUEST, "best_of: the gateway returns one choice per request", param="best_of"
        )
    validate_or_raise(REQUEST_VALIDATOR, body)
    prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
    stop = body.get("stop")
    return CanonicalRequest(
        model=body["model"],
        messages=[Message("user", [TextBlock(prompt)])],
        raw_prompt=prompt,
        max_tokens=token_count(body.get("max_tokens")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        stream=bool(body.get("stream")),
        user=body.get("user"),
        extra={k: v for k, v in body.items() if k not in _MAPPED and k not in _DEFAULTS_ONLY},
    )


def _choice(text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}


def response_object(
    *, request_id: str, model: str, created: int, folded: Folded, usage: Usage, cost_usd: float
) -> dict[str, Any]:
    return {
        "id": f"cmpl-{request_id}",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [_choice(folded.text, folded.finish_reason or "stop")],
        "usage": usage_object(usage, cost_usd),
    }


class CompletionStream:
    """`data:` frames of `text_completion` chunks, a usage-only chunk, then `data: [DONE]`."""

    def __init__(self, *, request_id: str, model: str) -> None:
        self._request_id = request_id
        self._base = {
            "id": f"cmpl-{request_id}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }

    def start(self) -> list[bytes]:
        return []

    def render(self, event: Event) -> list[bytes]:
        if isinstance(event, TextDelta):
            return [frame({**self._base, "choices": [_choice(event.text, None)]})]
        if isinstance(event, Finish):
            return [frame({**self._base, "choices": [_choice("", event.reason)]})]
        return []

    def finish(self, usage: Usage, cost_usd: float) -> list[bytes]:
        return [frame({**self._base, "choices": [], "usage": usage_object(usage, cost_usd)}), DONE]

    def error(self, code: ErrorCode, message: str) -> list[bytes]:
        return [frame(error_body(code, message, self._request_id)), DONE]


def stream_renderer(*, request_id: str, model: str, tool_events: bool = False) -> CompletionStream:
    return CompletionStream(request_id=request_id, model=model)
