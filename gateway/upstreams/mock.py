"""The built-in sandbox upstream: deterministic, no network, streams with realistic pacing.

Route options (providers.yaml): `first_token_ms` (default 150), `tokens_per_second` (default 60) and, for
embeddings, `dimensions` (default 256).
It answers with text (a short echo; asked for something "long", a "story" or an "essay", a long text until
max_tokens, to watch a stream and try Stop), as JSON when a response format asks for it (an instance of
a JSON schema); with tools and tool_choice required/named it calls the first (or
named) tool; with reasoning asked for it thinks out loud first. Usage counts one token per emitted word piece.

Offered server tools (ADR 0013), it calls one when the user's last turn asks for it (`_server_call`: a URL
→ web_fetch, time or date → datetime, draw or image → image, search words or a question → web_search),
and once the results are in, answers from them: so `make run` shows every tool offline.
"""

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncGenerator, Sequence

from gateway.canonical import (
    BlockStart,
    BlockStop,
    CanonicalRequest,
    Event,
    Finish,
    FinishReason,
    Message,
    ReasoningDelta,
    TextBlock,
    TextDelta,
    ToolCallBlock,
    ToolCallDelta,
    ToolResultBlock,
    Usage,
)
from gateway.tokens import estimate_prompt_tokens
from gateway.upstreams.base import Embedded, RouteInfo, UpstreamAdapter
from gateway.upstreams.http1 import UpstreamClient
from gateway.upstreams.openai_embeddings import unit_length
from gateway.upstreams.registry import register


def _pieces(text: str) -> list[str]:
    """Split into word pieces that keep their spaces, as a tokenizer's output would."""
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


# Asked for a long answer, the sandbox streams this over and over until max_tokens: time to watch the stream
# and to try the playground's Stop button (billed for what was produced).
_LONG_ASK = re.compile(r"\b(long|story|essay)\b", re.IGNORECASE)
_LONG_PARAGRAPH = (
    "This is a long answer from the HyperInfer sandbox, streamed one word piece at a time as a real model"
    " would stream it. Every piece is counted as a token and billed at the model's price, so stopping"
    " early pays only for the pieces you received."
)
_LONG_REPEATS = 40
_WORD = re.compile(r"\w+")


def _reply(request: CanonicalRequest) -> str:
    last = request.messages[-1] if request.messages else None
    if last is not None and last.role == "tool" and _answers_server_calls(request, last):
        return _from_results(last)
    last_user = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    if _LONG_ASK.search(last_user):
        return " ".join([_LONG_PARAGRAPH] * _LONG_REPEATS)
    quoted = " ".join(last_user.split()[:12]) or "nothing"
    return f"Hello from the HyperInfer sandbox. You said: {quoted}"


def _formatted(request: CanonicalRequest, reply: str) -> str:
    """The reply in the format asked for: a JSON object (`json_object`), or an instance of the schema
    (`json_schema`), so structured output can be tried here as it is on a real model."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return reply
    if fmt.type == "json_schema" and fmt.schema:
        return json.dumps(_instance(fmt.schema, reply, fmt.schema))
    return json.dumps({"answer": reply})


def _instance(schema: object, reply: str, root: dict[str, object], depth: int = 0) -> object:
    """A value the JSON schema accepts: each property of an object, one item of an array, an enum's first
    value, the reply where a string goes. Enough for the shapes structured output asks for."""
    if not isinstance(schema, dict) or depth > 8:
        return reply
    if isinstance(ref := schema.get("$ref"), str) and ref.startswith("#/"):
        target: object = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _instance(target, reply, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("anyOf", "oneOf", "allOf"):
        if schema.get(combined):
            return _instance(schema[combined][0], reply, root, depth + 1)
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: _instance(sub, reply, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [_instance(schema.get("items") or {}, reply, root, depth + 1)]
    return {"integer": 1, "number": 1.0, "boolean": True, "null": None}.get(str(kind), reply)


def _answers_server_calls(request: CanonicalRequest, results: Message) -> bool:
    """Whether these results answer server tool calls (the client's own tools get the usual reply)."""
    names = {
        block.id: block.name
        for message in request.messages
        for block in message.content
        if isinstance(block, ToolCallBlock)
    }
    answered = [names.get(b.tool_call_id) for b in results.content if isinstance(b, ToolResultBlock)]
    return any(name in SERVER_TOOLS for name in answered)


def _from_results(results: Message) -> str:
    """An answer from the server tools' results: a quote of each, and the sources it numbered."""
    said = []
    for block in results.content:
        if isinstance(block, ToolResultBlock):
            text = " ".join(part.text for part in block.content if isinstance(part, TextBlock))
            if block.is_error:
                said.append(f"The tool failed: {text[:200]}")
            else:
                cited = " ".join(dict.fromkeys(re.findall(r"\[\d+\]", text)))
                said.append(f"{' '.join(text.split())[:200]}{' ' + cited if cited else ''}")
    return "Here is what I found (sandbox): " + " | ".join(said)


SERVER_TOOLS = ("web_search", "web_fetch", "datetime", "image")
_URL = re.compile(r"https?://[^\s)>\]\"']+")
_ZONE = re.compile(r"\b[A-Z][a-z]+/[A-Z][A-Za-z_]+\b")
_WORDS = {
    "datetime": ("time", "date", "today", "clock"),
    "image": ("image", "draw", "picture"),
    "web_search": ("search", "look up", "find", "news", "latest", "?"),
}


def _server_call(request: CanonicalRequest) -> tuple[str, dict[str, str]] | None:
    """The server tool the user's last turn asks for, among those offered, and its arguments."""
    offered = {tool.name for tool in request.tools}
    last = request.messages[-1] if request.messages else None
    choice = request.tool_choice
    if last is None or last.role != "user" or (choice is not None and choice.mode == "none"):
        return None
    text = last.text()
    lowered = text.lower()
    if "web_fetch" in offered and (url := _URL.search(text)):
        return "web_fetch", {"url": url.group(0).rstrip(".,;")}
    if "datetime" in offered and any(word in lowered for word in _WORDS["datetime"]):
        zone = _ZONE.search(text)
        return "datetime", {"timezone": zone.group(0)} if zone else {}
    if "image" in offered and any(word in lowered for word in _WORDS["image"]):
        return "image", {"prompt": text[:200]}
    if "web_search" in offered and any(word in lowered for word in _WORDS["web_search"]):
        return "web_search", {"query": " ".join(text.split())[:100]}
    return None


@register
class MockAdapter(UpstreamAdapter):
    kind = "mock"
    label = "Mock (offline sandbox)"
    needs_base_url = False  # no network at all
    needs_credentials = False
    completes_text = True  # a raw prompt is its user turn
    serves_embeddings = shortens_embeddings = True

    async def stream(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        delay = 1 / float(route.options.get("tokens_per_second", 60))
        await asyncio.sleep(float(route.options.get("first_token_ms", 150)) / 1000)
        budget = request.max_tokens or 1_000_000
        produced = reasoning = 0
        index = 0
        finish: FinishReason

        if request.reasoning and request.reasoning.enabled is not False:
            yield BlockStart(index, "reasoning")
            for piece in _pieces("The user wants a short, friendly answer.")[:budget]:
                yield ReasoningDelta(index, piece)
                produced += 1
                reasoning += 1
                await asyncio.sleep(delay)
            yield BlockStop(index)
            index += 1

        tool = self._tool_to_call(request)
        server = _server_call(request) if tool is None else None
        if server is not None and produced < budget:
            name, arguments = server
            yield BlockStart(index, "tool_call", tool_call_id=f"call_mock_{index}", tool_name=name)
            yield ToolCallDelta(index, json.dumps(arguments))
            produced += 1
            yield BlockStop(index)
            finish = "tool_calls"
        elif tool is not None and produced < budget:
            yield BlockStart(index, "tool_call", tool_call_id=f"call_mock_{index}", tool_name=tool)
            for piece in ('{"input": ', json.dumps(_reply(request)[:40]), "}"):
                yield ToolCallDelta(index, piece)
                produced += 1
                await asyncio.sleep(delay)
            yield BlockStop(index)
            finish = "tool_calls"
        else:
            pieces = _pieces(_formatted(request, _reply(request)))
            remaining = max(0, budget - produced)
            yield BlockStart(index, "text")
            for piece in pieces[:remaining]:
                yield TextDelta(index, piece)
                produced += 1
                await asyncio.sleep(delay)
            yield BlockStop(index)
            finish = "length" if len(pieces) > remaining else "stop"
        yield Finish(finish)
        yield Usage(
            prompt_tokens=estimate_prompt_tokens(request),
            completion_tokens=produced,
            reasoning_tokens=reasoning,
        )

    @staticmethod
    def _tool_to_call(request: CanonicalRequest) -> str | None:
        choice = request.tool_choice
        if not request.tools or choice is None or choice.mode in ("auto", "none"):
            return None
        return choice.name if choice.mode == "tool" else request.tools[0].name

    async def embed(
        self,
        texts: Sequence[str],
        route: RouteInfo,
        client: UpstreamClient,
        *,
        dimensions: int | None,
    ) -> Embedded:
        """Bags of words hashed into `dimensions` (else the route's `dimensions`, default 256), unit length:
        deterministic, and texts that share words point the same way. A token per word."""
        await asyncio.sleep(float(route.options.get("first_token_ms", 20)) / 1000)
        size = dimensions or int(route.options.get("dimensions", 256))
        vectors, tokens = [], 0
        for text in texts:
            words = _WORD.findall(text.lower())
            tokens += max(1, len(words))
            vector = [0.0] * size
            for word in words:
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                vector[int.from_bytes(digest[:4], "big") % size] += 1.0 if digest[4] & 1 else -1.0
            vectors.append(unit_length(vector))
        return Embedded(vectors, tokens)
