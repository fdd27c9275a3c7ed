"""A non-streamed response is the fold of the event stream (design §3): one code path for both."""

from dataclasses import dataclass, field
from typing import TypeVar

from gateway.canonical import (
    BlockStart,
    Citation,
    Event,
    Finish,
    ReasoningDelta,
    ServerToolCall,
    ServerToolResult,
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
class FoldedText:
    text: str = ""


@dataclass(slots=True)
class FoldedServerTool:
    """A server tool call the gateway ran (ADR 0013) and, once it finished, what it came to."""

    id: str
    name: str
    arguments: str
    result: ServerToolResult | None = None


FoldedBlock = FoldedText | FoldedReasoning | FoldedToolCall | FoldedServerTool
_Content = TypeVar("_Content", FoldedText, FoldedReasoning)


@dataclass(slots=True)
class Folded:
    """The answer's blocks in the order they started (as the stream sent them), and how it ended."""

    blocks: list[FoldedBlock] = field(default_factory=list)
    finish_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    deltas: int = 0  # how many content deltas arrived (a token count when usage never came)
    _by_index: dict[int, FoldedBlock] = field(default_factory=dict)  # the stream's block index → block

    @property
    def text(self) -> str:
        """All the answer's text, in order (formats with one message: chat completions)."""
        return "".join(block.text for block in self.blocks if isinstance(block, FoldedText))

    @property
    def reasoning_blocks(self) -> list[FoldedReasoning]:
        return [block for block in self.blocks if isinstance(block, FoldedReasoning)]

    @property
    def reasoning(self) -> str:
        return "".join(block.text for block in self.reasoning_blocks)

    @property
    def tool_calls(self) -> list[FoldedToolCall]:
        return [block for block in self.blocks if isinstance(block, FoldedToolCall)]

    @property
    def server_tools(self) -> list[FoldedServerTool]:
        return [block for block in self.blocks if isinstance(block, FoldedServerTool)]

    @property
    def citations(self) -> list[Citation]:
        """Every source the server tools found, each URL once, in the order they came."""
        seen: dict[str, Citation] = {}
        for tool in self.server_tools:
            for citation in tool.result.citations if tool.result else ():
                seen.setdefault(citation.url, citation)
        return list(seen.values())

    def add(self, event: Event) -> None:
        match event:
            case TextDelta(index=index, text=text):
                self._block(index, FoldedText).text += text
                self.deltas += 1
            case ReasoningDelta(index=index, text=text, signature=signature, redacted=redacted):
                block = self._block(index, FoldedReasoning)
                block.text += text
                block.signature = signature or block.signature
                block.redacted = block.redacted or redacted
                self.deltas += 1 if text else 0
            case BlockStart(index=index, kind="tool_call", tool_call_id=call_id, tool_name=name):
                number = len(self.tool_calls)
                self._start(index, FoldedToolCall(id=call_id or f"call_{number}", name=name or ""))
            case BlockStart(index=index, kind="reasoning"):
                self._start(index, FoldedReasoning())
            case BlockStart(index=index, kind="text"):
                self._start(index, FoldedText())
            case ToolCallDelta(index=index, arguments=arguments):
                call = self._by_index.get(index)
                if not isinstance(call, FoldedToolCall):  # a lenient upstream: the latest call
                    call = self.tool_calls[-1]
                call.arguments += arguments
                self.deltas += 1
            case ServerToolCall(index=index, call_id=call_id, name=name, arguments=arguments):
                self._start(index, FoldedServerTool(call_id, name, arguments))
            case ServerToolResult(call_id=call_id):
                for tool in self.server_tools:
                    if tool.id == call_id:
                        tool.result = event
            case Finish(reason=reason, stop_sequence=stop_sequence):
                self.finish_reason = reason
                self.stop_sequence = stop_sequence
            case Usage():
                self.usage = event

    def _start(self, index: int, block: FoldedBlock) -> None:
        self.blocks.append(block)
        self._by_index[index] = block

    def _block(self, index: int, kind: type[_Content]) -> _Content:
        """The started block a delta belongs to; a delta without a start (a lenient upstream) starts one."""
        block = self._by_index.get(index)
        if not isinstance(block, kind):
            block = kind()
            self._start(index, block)
        return block
