"""What the OpenAI-style dialects' fakes (tests/fakes/openai_dialects.py) answer: a `Scenario` chooses the
text, reasoning, tool calls and usage of the answer, or a failure mode; `step` plays a tool-calling model."""

from dataclasses import dataclass, field, replace
from typing import Any, Literal

Dialect = Literal["cerebras", "fireworks", "baseten", "llamacpp"]
Failure = Literal[
    "server_error",  # HTTP 500
    "rate_limited",  # HTTP 429
    "unauthorized",  # HTTP 401
    "overloaded",  # HTTP 529
    "context_length",  # HTTP 400 with the dialect's context-length body
    "slow_first_byte",  # nothing at all for `delay` seconds
    "stall",  # the role frame, then nothing for `delay` seconds
    "cut",  # a few frames, then the connection is dropped
    "pause",  # a few frames, then nothing for `delay` seconds (a client may leave meanwhile), then the rest
    "stream_error",  # a few frames, then an error object inside the stream
    "malformed",  # a frame that is not JSON
    "unfinished",  # the stream ends cleanly ([DONE]) but no frame ever has a finish_reason
    "http_error",  # HTTP `error_status` with `error_message` (and `error_code`) in the dialect's envelope
]

CEREBRAS_TIME_INFO = {"queue_time": 0.0, "prompt_time": 0.01, "completion_time": 0.2, "total_time": 0.21}


def fireworks_perf_metrics(s: "Scenario") -> dict:
    return {"prompt-tokens": s.prompt_tokens, "server-time-to-first-token": 0.1}


@dataclass
class FakeToolCall:
    name: str
    arguments: str
    id: str = "call_fake_1"


@dataclass
class Scenario:
    text: str = "Hello there, how can I help?"
    reasoning: str = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    text_after_tool_calls: str = ""  # content after the tool calls' deltas ([text, tool call, text])
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    prompt_tokens: int = 12
    completion_tokens: int = 7
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    piece: int = 5  # characters per streamed delta
    failure: Failure | None = None
    delay: float = 5.0  # for slow_first_byte, stall and pause; released at once when the fake stops
    frame_interval: float = 0.0  # a stream's pause between frames: a model generating at its own pace
    retry_after: int = 7  # the Retry-After of a rate_limited answer
    stream_error_status: int = 429
    stream_error_message: str = "Requests per minute limit exceeded"
    error_status: int = 400  # for http_error
    error_message: str = "fake http_error"
    error_code: str | None = None
    # Embeddings (the Jan dialect): `embedding_size` numbers a vector; per token (as a real llama.cpp server
    # without pooling answers) or one per input; `prompt_tokens` in the usage, a word a token when None.
    embedding_size: int = 4
    embedding_per_token: bool = False
    # A model that calls a tool the request offers, (name, arguments JSON), while the conversation has no tool
    # result yet, and then answers "From the tool: " and the start of the last result (it read it).
    tool_call: tuple[str, str] | None = None


def step(s: Scenario, body: dict) -> Scenario:
    """The scenario for this request of a tool-calling conversation: the call, or the answer from it."""
    if s.tool_call is None:
        return s
    name, arguments = s.tool_call
    messages = body.get("messages") or []
    results = [m for m in messages if m.get("role") == "tool"]
    if not results:
        offered = {tool["function"]["name"] for tool in body.get("tools") or []}
        if name in offered:
            return replace(s, text="", tool_calls=[FakeToolCall(name, arguments, id=f"call_fake_{name}")])
        return s
    content = results[-1].get("content") or ""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content)
    return replace(s, text="From the tool: " + content[:80], tool_calls=[])


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]
