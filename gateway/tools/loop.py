"""The server-tool loop (ADR 0013): a model's steps, with the gateway running the server tools it calls
between them, as one canonical event stream — so every format renders it, streamed or folded, as it
renders any answer.

Each step is one upstream answer (`open_step`: routing.open_stream's events in the pipeline, a script in
the tests). Text and reasoning pass through as they come, block indexes numbered on across steps. The
model's calls of server tools are held back: the client never sees them as its own tool calls. A step that
called server tools and nothing else is followed by their results and the next step; at the step limit the
last step is asked with `tool_choice: none`, so it answers. A step that also called one of the client's own
tools ends the loop there (`tool_calls`, as without server tools): the client answers its tool, and the
server calls of that step are dropped, neither run nor billed. The stream ends with one Finish and one Usage,
the sum of the steps' — every step was an upstream request, and each is billed.

A model without tool calling is never offered the tools: web_search (on the last user turn) and datetime run
once before its only step, their results in its context.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.canonical import (
    Block,
    BlockStart,
    CanonicalRequest,
    ErrorEvent,
    Event,
    Finish,
    Message,
    ReasoningBlock,
    ReasoningDelta,
    ServerToolCall,
    ServerToolResult,
    TextBlock,
    TextDelta,
    Tool,
    ToolCallBlock,
    ToolCallDelta,
    ToolChoice,
    ToolResultBlock,
    Usage,
)
from gateway.tools.base import ServerTool, ToolContext, ToolOutcome
from gateway.tools.budget import MAX_CALLS_PER_STEP

logger = logging.getLogger(__name__)

StepOpener = Callable[[CanonicalRequest], Awaitable[AsyncGenerator[Event, None]]]
DEFAULT_MAX_STEPS = 5
TOOL_TIMEOUT_SECONDS = 30.0
PARALLEL_TOOL_RUNS = 4
_QUERY_CHARS = 300  # of the user's turn, as the search query of a model that cannot call tools
_CONTEXT_NOTE = (
    "The gateway ran these tools on the user's last message; use their results to answer, citing sources "
    "by their numbers."
)


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One server tool call the gateway ran: what the model asked and what came of it (billed per unit)."""

    call_id: str
    name: str
    arguments: str
    outcome: ToolOutcome


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    parts: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        return "".join(self.parts)


@dataclass(slots=True)
class _Step:
    """What one step said, in upstream order, to put back into the conversation."""

    blocks: dict[int, Block] = field(default_factory=dict)
    texts: dict[int, list[str]] = field(
        default_factory=dict
    )  # a text block's deltas, joined at the step's end
    held: dict[int, _Call] = field(default_factory=dict)  # server tool calls, by upstream index
    indexes: dict[int, int] = field(default_factory=dict)  # upstream index -> the client's
    client_calls: bool = False
    finish: Finish | None = None
    usage: Usage | None = None


def usage_sum(total: Usage | None, more: Usage | None) -> Usage | None:
    if total is None or more is None:
        return more if total is None else total
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        cached_prompt_tokens=total.cached_prompt_tokens + more.cached_prompt_tokens,
        reasoning_tokens=total.reasoning_tokens + more.reasoning_tokens,
        cache_write_prompt_tokens=total.cache_write_prompt_tokens + more.cache_write_prompt_tokens,
        # Each step's provider report is of that step: the latest one of each dialect stands.
        provider_metadata={**(total.provider_metadata or {}), **(more.provider_metadata or {})} or None,
    )


class ToolLoop:
    def __init__(
        self,
        tools: Mapping[str, ServerTool],
        context: ToolContext,
        max_steps: int = DEFAULT_MAX_STEPS,
        *,
        model_calls_tools: bool = True,
        options: Mapping[str, dict[str, Any]] | None = None,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        self.tools = dict(tools)
        self.context = context
        self.options = dict(options or {})  # each tool's options from the client (e.g. max_results)
        # Told when a step has finished and when its calls have run (the settlement journal notes what a
        # request owes so far, in case its process dies before the end).
        self.on_step = on_step or (lambda: None)
        self.max_steps = max_steps
        # A model without tool calling is not offered the tools: web_search and datetime run once, first,
        # on the last user turn, their results in its context (`_run_first`); it answers in one step.
        self.model_calls_tools = model_calls_tools
        self.runs: list[ToolRun] = []  # every call run, in order: the bill's tool units
        self.usage: Usage | None = None  # the finished steps' usage (a client that leaves pays at least this)
        self.steps = 0
        self.current: CanonicalRequest | None = None  # what the step under way was asked (None: none is)
        self.step_deltas = 0  # content deltas the step under way sent so far

    def offer(self, request: CanonicalRequest, last: bool) -> CanonicalRequest:
        """The request a step sends: the client's tools and the server tools; the last step may not call
        a server tool (`none`, unless the client named one of its own tools to call)."""
        if not self.model_calls_tools:
            return request
        if clash := self.clash(request):
            raise ValueError(f"tools: {clash!r} is a server tool's name")
        offered = [Tool(t.name, t.description, t.parameters) for t in self.tools.values()]
        choice = request.tool_choice
        if last and not (choice is not None and choice.mode == "tool"):
            choice = ToolChoice("none")
        return replace(request, tools=[*request.tools, *offered], tool_choice=choice)

    def clash(self, request: CanonicalRequest) -> str | None:
        """A client tool named like a server tool switched on (the model could not tell them apart)."""
        clashing = {tool.name for tool in request.tools} & self.tools.keys()
        return min(clashing) if clashing else None

    async def events(self, request: CanonicalRequest, open_step: StepOpener) -> AsyncGenerator[Event, None]:
        conversation = list(request.messages)
        numbered = 0  # the client's next block index
        if not self.model_calls_tools:
            async for event in self._run_first(conversation):
                numbered += 1
                yield event
        while True:
            self.steps += 1
            last = self.steps >= self.max_steps or not self.model_calls_tools
            step = _Step()
            self.current = self.offer(replace(request, messages=conversation), last)
            self.step_deltas = 0
            async with contextlib.aclosing(await open_step(self.current)) as stream:
                async for event in stream:
                    self.step_deltas += isinstance(event, TextDelta | ReasoningDelta | ToolCallDelta)
                    if (passed := self._read(event, step, numbered)) is not None:
                        numbered += isinstance(passed, BlockStart)
                        yield passed
                    if isinstance(event, ErrorEvent):
                        return  # the answer ends here; `usage` still holds the finished steps'
            self.usage = usage_sum(self.usage, step.usage)
            self.current, self.step_deltas = None, 0  # no step under way while the tools run
            if step.held and not step.client_calls and not last:
                self.on_step()
                calls = list(step.held.values())
                for call in calls:
                    yield ServerToolCall(numbered, call.call_id, call.name, call.arguments or "{}")
                    numbered += 1
                runs = await self._run_all(calls)
                self.on_step()
                for run in runs:
                    yield _result_event(numbered, run)
                    numbered += 1
                conversation += _answered(step, runs)
                continue
            if step.held:
                logger.info("server tool calls dropped: %s", [call.name for call in step.held.values()])
            reason = step.finish.reason if step.finish else "stop"
            if reason == "tool_calls" and not step.client_calls:
                reason = "stop"  # the calls were the server's: to the client this answer simply ended
            yield Finish(reason, step.finish.stop_sequence if step.finish else None)
            if self.usage is not None:
                yield self.usage
            return

    async def _run_first(self, conversation: list[Message]) -> AsyncGenerator[Event, None]:
        """For a model without tool calling: search the last user turn (and tell the date), before it
        answers; the results join the conversation as context, just before that turn."""
        asked = next((m.text() for m in reversed(conversation) if m.role == "user"), "").strip()
        calls = []
        if "web_search" in self.tools and asked:
            calls.append(_Call("call_search_0", "web_search", [json.dumps({"query": asked[:_QUERY_CHARS]})]))
        if "datetime" in self.tools:
            calls.append(_Call("call_datetime_0", "datetime", ["{}"]))
        for number, call in enumerate(calls):
            yield ServerToolCall(number, call.call_id, call.name, call.arguments)
        runs = await self._run_all(calls)
        for number, run in enumerate(runs, start=len(calls)):
            yield _result_event(number, run)
        if runs:
            context = "\n\n".join(f"[{run.name}]\n{run.outcome.text}" for run in runs)
            note = Message("system", [TextBlock(f"{_CONTEXT_NOTE}\n\n{context}")])
            last_user = max((i for i, m in enumerate(conversation) if m.role == "user"), default=0)
            conversation.insert(last_user, note)

    def _read(self, event: Event, step: _Step, numbered: int) -> Event | None:
        """Note one event of a step; what the client gets of it (renumbered), or None when held back."""
        if isinstance(event, Finish):
            step.finish = event
            return None
        if isinstance(event, Usage):
            step.usage = event
            return None
        if isinstance(event, ErrorEvent):
            return event  # it ends the stream, as it would without tools
        if isinstance(event, BlockStart) and event.kind == "tool_call" and event.tool_name in self.tools:
            step.held[event.index] = _Call(event.tool_call_id or f"call_{event.index}", event.tool_name)
            return None
        if event.index in step.held:
            if isinstance(event, ToolCallDelta):
                step.held[event.index].parts.append(event.arguments)
            return None
        if isinstance(event, BlockStart):
            step.indexes[event.index] = numbered
            step.client_calls |= event.kind == "tool_call"
        _remember(step, event)
        return replace(event, index=step.indexes[event.index])

    async def _run_all(self, calls: list[_Call]) -> list[ToolRun]:
        """Run a step's server calls, concurrently and bounded; the runs in the calls' order. Calls past
        MAX_CALLS_PER_STEP are not run: their result says so (and the reservation counted no more)."""
        limit = asyncio.Semaphore(PARALLEL_TOOL_RUNS)

        async def run(position: int, call: _Call) -> ToolRun:
            if position >= MAX_CALLS_PER_STEP:
                outcome = ToolOutcome.failed(f"at most {MAX_CALLS_PER_STEP} server tool calls per step")
                return ToolRun(call.call_id, call.name, call.arguments or "{}", outcome)
            async with limit:
                return ToolRun(call.call_id, call.name, call.arguments or "{}", await self._run(call))

        runs = await asyncio.gather(*(run(position, call) for position, call in enumerate(calls)))
        self.runs += runs
        return runs

    async def _run(self, call: _Call) -> ToolOutcome:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            return ToolOutcome.failed("the arguments are not valid JSON")
        if not isinstance(arguments, dict):
            return ToolOutcome.failed("the arguments must be a JSON object")
        try:
            async with asyncio.timeout(TOOL_TIMEOUT_SECONDS):
                context = replace(self.context, options=self.options.get(call.name, {}))
                return await self.tools[call.name].run(arguments, context)
        except TimeoutError:
            return ToolOutcome.failed(f"{call.name} did not finish within {TOOL_TIMEOUT_SECONDS:g} s")
        except Exception:  # a bug in a tool: the model hears it failed, the log has the traceback
            logger.exception("server tool %s failed", call.name)
            return ToolOutcome.failed(f"{call.name} failed")


def _remember(step: _Step, event: Event) -> None:
    """Keep what the client was sent of this step, to say it again in the next step's conversation."""
    if isinstance(event, BlockStart) and event.kind in ("text", "reasoning"):
        step.blocks[event.index] = TextBlock("") if event.kind == "text" else ReasoningBlock("")
        step.texts[event.index] = []  # appended to, not `+=` on the block: that copied it each delta
    elif isinstance(event, TextDelta) and isinstance(step.blocks.get(event.index), TextBlock):
        step.texts[event.index].append(event.text)
    elif isinstance(event, ReasoningDelta) and isinstance(
        block := step.blocks.get(event.index), ReasoningBlock
    ):
        step.texts[event.index].append(event.text)
        if event.signature:  # Anthropic's thinking before a tool call must go back signed
            block.signature = event.signature
            block.redacted = event.redacted


def _answered(step: _Step, runs: list[ToolRun]) -> list[Message]:
    """The step's assistant turn with its server tool calls, then their results: the next step's context."""
    for index, pieces in step.texts.items():
        block = step.blocks[index]
        assert isinstance(block, TextBlock | ReasoningBlock)
        block.text = "".join(pieces)
    said = [block for _, block in sorted(step.blocks.items())]
    calls = [ToolCallBlock(run.call_id, run.name, run.arguments) for run in runs]
    results = [
        ToolResultBlock(run.call_id, [TextBlock(run.outcome.text)], is_error=bool(run.outcome.error))
        for run in runs
    ]
    return [Message("assistant", [*said, *calls]), Message("tool", list(results))]


def _result_event(index: int, run: ToolRun) -> ServerToolResult:
    outcome = run.outcome
    return ServerToolResult(
        index,
        run.call_id,
        run.name,
        run.arguments,
        outcome.text,
        citations=outcome.citations,
        images=outcome.images,
        error=outcome.error,
    )
