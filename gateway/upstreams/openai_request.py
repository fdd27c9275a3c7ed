"""The OpenAI Chat Completions dialect's request: the canonical request → the body of
`POST {base_url}/chat/completions`, or of `POST {base_url}/completions` for a legacy text completion
(`raw_prompt`, sent as it is). A dialect of the family overrides what differs (`max_tokens_field`,
`map_reasoning`, `effort`, `part`, ...: cerebras.py, fireworks.py). A streamed request asks for its usage;
a non-streamed one asks for the whole answer (`stream: false`, ADR 0019).

A dialect declares the top-level request fields of its spec (`chat_fields`, `completion_fields`): the
request's provider-only fields go to it only if it has them (upstreams/extras.py)."""

from collections.abc import Sequence
from typing import ClassVar

from core.errors import ErrorCode
from gateway.canonical import (
    Block,
    CanonicalRequest,
    FileBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    ResponseFormat,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
)
from gateway.upstreams.base import RouteInfo, UpstreamError
from gateway.upstreams.extras import extras_for
from gateway.upstreams.openai_errors import Json

# The adapter owns these: `extra` may not turn streaming off or change the conversation.
_PROTECTED = frozenset({"model", "messages", "stream", "stream_options"})
_PROTECTED_COMPLETION = frozenset({"model", "prompt", "stream", "stream_options"})


def named_tool(name: str | None) -> Json:
    """A `tool_choice` that names the one function to call."""
    return {"type": "function", "function": {"name": name}}


def effort_for_budget(budget: int) -> str:
    """The nearest effort for a token budget, for dialects that only take an effort."""
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


class OpenAIRequestMapping:
    """The request half of `OpenAICompatibleAdapter` (a mixin: its subclasses override these methods)."""

    label: ClassVar[str] = ""  # the dialect's name in messages (UpstreamAdapter's)
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    history_reasoning_field: ClassVar[str | None] = None  # where assistant reasoning goes in a request
    message_names: ClassVar[bool] = True
    # The top-level request fields of the dialect's spec, chat and text completions (upstreams/extras.py);
    # None: any field of the family goes (a generic server decides for itself).
    chat_fields: ClassVar[frozenset[str] | None] = None
    completion_fields: ClassVar[frozenset[str] | None] = None
    # The `reasoning_effort` values the dialect takes, lowest first ("minimal" asks for the first).
    efforts: ClassVar[tuple[str, ...]] = ("minimal", "low", "medium", "high")
    # Whether a non-streamed request asks the upstream for the whole answer (else it is streamed and folded).
    answers_whole: ClassVar[bool] = True

    def chat_url(self, route: RouteInfo) -> str:
        return f"{route.provider.base_url.rstrip('/')}/chat/completions"

    def url_for(self, request: CanonicalRequest, route: RouteInfo) -> str:
        """Where this request goes: chat completions, or text completions for a raw prompt."""
        if request.raw_prompt is None:
            return self.chat_url(route)
        return f"{route.provider.base_url.rstrip('/')}/completions"

    def auth_headers(self, route: RouteInfo) -> dict[str, str]:
        key = route.provider.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def streams(self, request: CanonicalRequest) -> bool:
        """Whether this request is sent as a stream: when the client streams, or the dialect answers no other
        way."""
        return request.stream or not self.answers_whole

    def stream_options(self) -> Json | None:
        return {"include_usage": True}

    def build_body(self, request: CanonicalRequest, route: RouteInfo) -> Json:
        if request.raw_prompt is not None:
            return self.text_completion_body(request, route)
        body: Json = {"model": route.upstream_model_id, "messages": self.messages(request.messages)}
        if request.tools:
            body["tools"] = [
                self.tool(tool.name, tool.description, tool.parameters, tool.strict) for tool in request.tools
            ]
        if (choice := self.tool_choice(request)) is not None:
            body["tool_choice"] = choice
        if request.parallel_tool_calls is not None and request.tools:
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.max_tokens is not None:
            body[route.options.get("max_tokens_field", self.max_tokens_field)] = request.max_tokens
        optional = {"temperature": request.temperature, "top_p": request.top_p, "user": request.user}
        body.update({name: value for name, value in optional.items() if value is not None})
        if request.stop:
            body["stop"] = list(request.stop)
        if request.response_format is not None:
            body["response_format"] = self.response_format(request.response_format)
        self.map_reasoning(request, body)
        extra = extras_for(request, family="openai", fields=self.chat_fields, label=self.label)
        body.update({name: value for name, value in extra.items() if name not in _PROTECTED})
        return self.with_stream_flags(request, body)

    def tool_choice(self, request: CanonicalRequest) -> str | Json | None:
        """The request's `tool_choice` in the dialect: a mode, or the one function to call (None: none)."""
        choice = request.tool_choice
        if choice is None:
            return None
        return named_tool(choice.name) if choice.mode == "tool" else choice.mode

    def text_completion_body(self, request: CanonicalRequest, route: RouteInfo) -> Json:
        """A legacy completion: the prompt as it is; `max_tokens` in every dialect's completions schema."""
        body: Json = {"model": route.upstream_model_id, "prompt": request.raw_prompt}
        optional = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "user": request.user,
            "stop": list(request.stop) or None,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        extra = extras_for(request, family="openai", fields=self.completion_fields, label=self.label)
        body.update({name: value for name, value in extra.items() if name not in _PROTECTED_COMPLETION})
        return self.with_stream_flags(request, body)

    def with_stream_flags(self, request: CanonicalRequest, body: Json) -> Json:
        body["stream"] = self.streams(request)
        if body["stream"] and (options := self.stream_options()) is not None:
            body["stream_options"] = options
        return body

    @staticmethod
    def tool(name: str, description: str | None, parameters: Json, strict: bool | None = None) -> Json:
        function: Json = {"name": name, "parameters": parameters}
        if description:
            function["description"] = description
        if strict is not None:
            function["strict"] = strict
        return {"type": "function", "function": function}

    def response_format(self, fmt: ResponseFormat) -> Json:
        if fmt.type != "json_schema":
            return {"type": fmt.type}
        schema: Json = {"name": fmt.name or "response", "schema": fmt.schema or {}}
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        """OpenAI's own values: "none" for off, the effort as asked (a server without them says so)."""
        control = request.reasoning
        if control is None:
            return
        if control.enabled is False:
            body["reasoning_effort"] = "none"
        elif control.effort:
            body["reasoning_effort"] = self.effort(control.effort)
        elif control.budget_tokens:
            body["reasoning_effort"] = effort_for_budget(control.budget_tokens)

    def effort(self, asked: str) -> str:
        """The dialect's effort for the one asked: "minimal" is its lowest."""
        return asked if asked in self.efforts else self.efforts[0]

    def messages(self, messages: list[Message]) -> list[Json]:
        out: list[Json] = []
        for message in messages:
            results = [block for block in message.content if isinstance(block, ToolResultBlock)]
            out.extend(self.tool_result_messages(results))
            rest = [block for block in message.content if not isinstance(block, ToolResultBlock)]
            if rest or not results:
                out.append(self.message(message.role, rest, message.name))
        return out

    def message(self, role: str, blocks: Sequence[Block], name: str | None) -> Json:
        if role == "tool":  # a tool message without a result block: keep its text
            role = "user"
        out: Json = {"role": role}
        if role == "assistant":
            self.assistant_fields(blocks, out)
        else:
            out["content"] = self.content(role, blocks)
        if name and self.message_names:
            out["name"] = name
        return out

    def assistant_fields(self, blocks: Sequence[Block], out: Json) -> None:
        text = [block for block in blocks if isinstance(block, TextBlock)]
        calls = [block for block in blocks if isinstance(block, ToolCallBlock)]
        if text or not calls:  # a tool-calling turn without text has no content (some schemas forbid null)
            out["content"] = self.content("assistant", text)
        reasoning = "".join(b.text for b in blocks if isinstance(b, ReasoningBlock) and not b.redacted)
        if reasoning and self.history_reasoning_field:
            out[self.history_reasoning_field] = reasoning
        if calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls
            ]

    def content(self, role: str, blocks: Sequence[Block]) -> str | list[Json]:
        parts = [part for block in blocks if (part := self.part(block)) is not None]
        if not parts:
            return ""
        if len(parts) == 1 and parts[0]["type"] == "text":
            return parts[0]["text"]
        return parts

    @staticmethod
    def part(block: Block) -> Json | None:
        if isinstance(block, TextBlock):
            return {"type": "text", "text": block.text}
        if isinstance(block, ImageBlock):
            image: Json = {"url": block.url} | ({"detail": block.detail} if block.detail else {})
            return {"type": "image_url", "image_url": image}
        if isinstance(block, FileBlock):
            if block.file_url and not (block.file_data or block.file_id):
                raise UpstreamError(
                    ErrorCode.INVALID_REQUEST,
                    "file_url: this model's provider takes files inline only; send the file as file_data",
                    param="file_url",
                )
            fields = {"filename": block.filename, "file_data": block.file_data, "file_id": block.file_id}
            return {"type": "file", "file": {k: v for k, v in fields.items() if v is not None}}
        return None  # reasoning outside an assistant turn has no place in this dialect

    def tool_result_messages(self, results: list[ToolResultBlock]) -> list[Json]:
        out: list[Json] = []
        images: list[ImageBlock] = []
        for result in results:
            text = "".join(part.text for part in result.content if isinstance(part, TextBlock))
            out.append({"role": "tool", "tool_call_id": result.tool_call_id, "content": text})
            images += [part for part in result.content if isinstance(part, ImageBlock)]
        if images:  # tool messages carry text only; images follow in a user turn
            out.append({"role": "user", "content": self.content("user", images)})
        return out
