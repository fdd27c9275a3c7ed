"""A non-streamed response is the fold of the event stream (design §3): one code path for both."""

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
class FoldedReasoning:
    """One reasoning block: its text, and the signature (or a redacted block's data) an upstream gave it."""

    text: str = ""
    signature: str | None = None
    redacted: bool = False


@dataclass(slots=True)
class Folded:
    text: str = ""
    reasoning_blocks: list[FoldedReasoning] = field(default_factory=list)
    tool_calls: list[FoldedToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    deltas: int = 0  # how many content deltas arrived (a token count when usage never came)
    _reasoning_open: bool = False  # whether the last block started is a reasoning block

    @property
    def reasoning(self) -> str:
        return "".join(block.text for block in self.reasoning_blocks)

    def add(self, event: Event) -> None:
        match event:
            case TextDelta(text=text):
                self.text += text
                self.deltas += 1
            case ReasoningDelta(text=text, signature=signature, redacted=redacted):
                block = self._reasoning_block()
                block.text += text
                block.signature = signature or block.signature
                block.redacted = block.redacted or redacted
                self.deltas += 1 if text else 0
            case BlockStart(kind="reasoning"):
                self.reasoning_blocks.append(FoldedReasoning())
                self._reasoning_open = True
            case BlockStart(kind="tool_call", tool_call_id=call_id, tool_name=name):
                self._reasoning_open = False
                self.tool_calls.append(
                    FoldedToolCall(id=call_id or f"call_{len(self.tool_calls)}", name=name or "")
                )
            case BlockStart():
                self._reasoning_open = False
            case ToolCallDelta(arguments=arguments):
                self.tool_calls[-1].arguments += arguments
                self.deltas += 1
            case Finish(reason=reason, stop_sequence=stop_sequence):
                self.finish_reason = reason
                self.stop_sequence = stop_sequence
            case Usage():
                self.usage = event

    def _reasoning_block(self) -> FoldedReasoning:
        """The open reasoning block; a delta without a start (a lenient upstream) opens one."""
        if not self._reasoning_open or not self.reasoning_blocks:
            self.reasoning_blocks.append(FoldedReasoning())
            self._reasoning_open = True
        return self.reasoning_blocks[-1]
