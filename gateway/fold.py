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


def joined(pieces: list[str]) -> str:
    """Text gathered a delta at a time, read: joined once, and kept joined for the next read.

    The deltas are appended to a list, not to a string: `str +=` on an attribute copies the whole text at
    every delta (CPython extends a string in place only for a local variable holding its one reference), so
    a long answer cost time quadratic in its length (bench/README.md: 0.42 µs a delta at 1,000 deltas,
    1.55 µs at 32,000)."""
    if len(pieces) > 1:
        pieces[:] = ["".join(pieces)]
    return pieces[0] if pieces else ""


@dataclass(slots=True, eq=False, repr=False)
class _Gathered:
    """A block whose text (or a call's arguments) is gathered a delta at a time (`add`), joined when read:
    equal to another by what it says, however its deltas cut it (a whole answer is one delta, its stream
    many)."""

    _pieces: list[str] = field(default_factory=list, kw_only=True)
    __hash__ = None  # type: ignore[assignment]  # mutable

    def add(self, piece: str) -> None:
        self._pieces.append(piece)

    def gathered(self) -> str:
        return joined(self._pieces)

    def said(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Gathered) and type(other) is type(self) and self.said() == other.said()

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.said()!r}"


@dataclass(slots=True, eq=False, repr=False)
class FoldedToolCall(_Gathered):
    id: str
    name: str

    @property
    def arguments(self) -> str:
        return self.gathered()

    def said(self) -> tuple[object, ...]:
        return self.id, self.name, self.arguments


@dataclass(slots=True, eq=False, repr=False)
class FoldedReasoning(_Gathered):
    """One reasoning block: its text, and the signature (or a redacted block's data) an upstream gave it."""

    signature: str | None = None
    redacted: bool = False

    @property
    def text(self) -> str:
        return self.gathered()

    def said(self) -> tuple[object, ...]:
        return self.text, self.signature, self.redacted


@dataclass(slots=True, eq=False, repr=False)
class FoldedText(_Gathered):
    @property
    def text(self) -> str:
        return self.gathered()

    def said(self) -> tuple[object, ...]:
        return (self.text,)


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
                self._block(index, FoldedText).add(text)
                self.deltas += 1
            case ReasoningDelta(index=index, text=text, signature=signature, redacted=redacted):
                block = self._block(index, FoldedReasoning)
                block.add(text)
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
                call.add(arguments)
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
