"""The canonical model: every ingress format converts to it, every upstream adapter speaks from it.

A request is messages of content blocks plus tools and controls; a response is a stream of events.
A non-streamed response is the fold of the same events (`gateway.fold.Folded`): one code path.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

from core.errors import ErrorCode

Role = Literal["system", "user", "assistant", "tool"]
# An Anthropic prompt-cache breakpoint ({"type": "ephemeral", "ttl"?}) on a block or tool; the other dialects
# cache on their own, so only the anthropic adapter sends it.
CacheControl = dict[str, Any]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


# --- Content blocks -----------------------------------------------------------------------
@dataclass(slots=True)
class TextBlock:
    text: str
    cache_control: CacheControl | None = None


@dataclass(slots=True)
class ImageBlock:
    url: str  # http(s) URL or a data: URL
    detail: str | None = None
    cache_control: CacheControl | None = None


@dataclass(slots=True)
class FileBlock:
    filename: str | None = None
    file_data: str | None = None  # base64 or data: URL
    file_url: str | None = None
    file_id: str | None = None
    cache_control: CacheControl | None = None


@dataclass(slots=True)
class ReasoningBlock:
    text: str
    signature: str | None = None  # Anthropic thinking signatures must round-trip untouched
    redacted: bool = False


@dataclass(slots=True)
class ToolCallBlock:
    id: str
    name: str
    arguments: str  # a JSON document, as text
    cache_control: CacheControl | None = None


# What a tool result may carry: Chat Completions and Anthropic allow files next to text and images
# (the OpenAI-compatible dialects send only the text and images on).
ToolResultPart = TextBlock | ImageBlock | FileBlock


@dataclass(slots=True)
class ToolResultBlock:
    tool_call_id: str
    content: list[ToolResultPart]
    is_error: bool = False
    cache_control: CacheControl | None = None


Block = TextBlock | ImageBlock | FileBlock | ReasoningBlock | ToolCallBlock | ToolResultBlock


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Block]
    name: str | None = None

    def text(self) -> str:
        return "".join(block.text for block in self.content if isinstance(block, TextBlock))


# --- Request ------------------------------------------------------------------------------
@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None  # arguments must follow `parameters` exactly (OpenAI structured outputs)
    cache_control: CacheControl | None = None


ToolChoiceMode = Literal["auto", "none", "required", "tool"]


@dataclass(slots=True)
class ToolChoice:
    mode: ToolChoiceMode
    name: str | None = None  # with mode "tool": the one tool to call


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


# "minimal" (an extension in the formats): the lowest effort the target has. Effort "none" is `enabled=False`.
Effort = Literal["minimal", "low", "medium", "high"]


@dataclass(slots=True)
class ReasoningControl:
    """Reasoning effort, or an explicit budget, or off. None everywhere leaves the model's default."""

    effort: Effort | None = None
    budget_tokens: int | None = None
    enabled: bool | None = None  # False: reasoning off; True alone: on, at the model's default effort


@dataclass(frozen=True, slots=True)
class ServerToolUse:
    """A server tool the client switched on (ADR 0013): a `plugins` entry (Chat Completions, Messages) or a
    built-in tool (Responses), with the entry's other fields as the tool's options."""

    name: str  # web_search, web_fetch, pdf, datetime, image
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CanonicalRequest:
    model: str  # the catalog slug the client asked for
    messages: list[Message]
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None  # False: at most one tool call per turn
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    response_format: ResponseFormat | None = None
    reasoning: ReasoningControl | None = None
    stream: bool = False
    user: str | None = None
    # Fields the ingress format did not map (provider-only options), and the family of API they come from:
    # an upstream of that family gets them untouched, another one only those it has (upstreams/extras.py).
    extra: dict[str, Any] = field(default_factory=dict)
    extra_family: Literal["openai", "anthropic"] = "openai"
    server_tools: tuple[ServerToolUse, ...] = ()  # run by the gateway between the model's steps
    tool_events: bool = False  # stream a start and a result event per server tool call (hi_tool_events)
    # A legacy text completion (POST /api/v1/completions): this text goes to the upstream's completions
    # endpoint as it is, with no chat template. `messages` holds it too, as one user turn, for the estimates.
    raw_prompt: str | None = None


# --- Response events ----------------------------------------------------------------------
BlockKind = Literal["text", "reasoning", "tool_call"]


@dataclass(slots=True)
class BlockStart:
    index: int
    kind: BlockKind
    tool_call_id: str | None = None
    tool_name: str | None = None


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    index: int
    text: str
    signature: str | None = None
    redacted: bool = False  # an Anthropic redacted_thinking block: `signature` carries its opaque data


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # a fragment of the JSON arguments


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    stop_sequence: str | None = None  # the stop sequence that ended the answer, when the upstream says


@dataclass  # no __slots__: orjson writes it from its __dict__ (gateway/metering/base.py's Outcome)
class Usage:
    prompt_tokens: int  # all prompt tokens, cached ones included
    completion_tokens: int  # reasoning tokens included
    cached_prompt_tokens: int = 0  # read from the provider's prompt cache
    reasoning_tokens: int = 0
    cache_write_prompt_tokens: int = 0  # written to the cache (Anthropic reports these; billed as prompt)
    # What the provider reported about the generation beside its counts, under its dialect's name, in its own
    # shape: {"cerebras": {"time_info": {...}}}, {"fireworks": {"perf_metrics": {...}}}. Every format renders
    # it in its usage as `provider_metadata` (an extension), and the generation record keeps it.
    provider_metadata: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Citation:
    """A source a server tool found (a search result, a fetched page): the client's citation of it."""

    url: str
    title: str
    snippet: str = ""


@dataclass(slots=True)
class ServerToolCall:
    """The model called a server tool, which the gateway runs (ADR 0013): a block of its own in the answer.
    It comes whole, once the model's arguments are complete and before the tool runs."""

    index: int
    call_id: str
    name: str
    arguments: str  # a JSON document, as the model wrote it


@dataclass(slots=True)
class ServerToolResult:
    """What a server tool call came to: the block right after its call's (its own index)."""

    index: int
    call_id: str
    name: str
    arguments: str
    output: str  # what the model read
    citations: tuple[Citation, ...] = ()
    images: tuple[str, ...] = ()  # generated images, as data: URLs
    error: str = ""  # set when the call failed (then it is billed nothing)


@dataclass(slots=True)
class ErrorEvent:
    code: ErrorCode
    message: str


Event = (
    BlockStart
    | TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | BlockStop
    | ServerToolCall
    | ServerToolResult
    | Finish
    | Usage
    | ErrorEvent
)
