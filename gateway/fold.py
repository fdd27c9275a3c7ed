"""A non-streamed response is the fold of the event stream (DESIGN §3): one code path for both."""

from dataclasses import dataclass, field

from gateway.canonical import (
    BlockStart,
    Event,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)


@dataclass(slots=True)
class FoldedToolCall:
    id: str
    name: str
    arguments: str = ""


@dataclass(slots=True)
class Folded:
    text: str = ""
    reasoning: str = ""
    reasoning_signature: str | None = None
    reasoning_redacted: bool = False
    tool_calls: list[FoldedToolCall] = field(default_factory=list)
    _tool_by_block: dict[int, FoldedToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    deltas: int = 0  # how many content deltas arrived (a token count when usage never came)

    def add(self, event: Event) -> None:
        match event:
            case TextDelta(text=text):
                self.text += text
                self.deltas += 1
            case ReasoningDelta(text=text, signature=signature, redacted=redacted):
                self.reasoning += text
                self.reasoning_signature = signature or self.reasoning_signature
                self.reasoning_redacted = self.reasoning_redacted or redacted
                self.deltas += 1 if text else 0
            case BlockStart(kind="tool_call", tool_call_id=call_id, tool_name=name):
                self.tool_calls.append(
                    FoldedToolCall(id=call_id or f"call_{len(self.tool_calls)}", name=name or "")
                )
            case ToolCallDelta(arguments=arguments):
                self.tool_calls[-1].arguments += arguments
                self.deltas += 1
            case Finish(reason=reason):
                self.finish_reason = reason
            case Usage():
                self.usage = event
