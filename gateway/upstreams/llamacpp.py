"""Jan / the llama-cpp-python server (spec 002): OpenAI chat on a local model, without usage in its stream.

The server never reports usage while streaming, so the adapter counts it as closely as the stream allows:
- completion tokens: the server's own tokenizer (`POST /extras/tokenize/count`) counts the generated text and
  tool arguments. Chunks are no count: the server merges the tokens of a character that spans several into one
  chunk ("東京 🍣" answers came out at less than half their tokens), and sends tool calls in chunks of its own
  (`"role": null`). Measured against llama-cpp-python 0.3.36 at temperature 0, the count equals the server's
  own `completion_tokens` for text, non-ASCII text and forced tool calls; if it fails, the chunks stand in.
  Bytes a model generates that form no character are dropped from the text (empty chunks), so its count
  falls short there (18 where the server had ~26, measured on SmolLM2-135M). Sampled (the default
  temperature), an answer need not re-tokenize to the tokens the server generated. So the count is held
  at or above its chunks, and an ASCII one's at or below max_tokens, which bounds it exactly when the
  server cut it (`held_to_the_stream`);
- prompt tokens: after the stream, the same chat is sent once more, not streamed, with `max_tokens: 1`; the
  server's own usage then counts the prompt as its chat template rendered it. The prompt is the prefix the
  server has just evaluated, so llama.cpp reuses it and the probe costs about one token of work.
If the probe fails, the server's tokenizer (`POST /extras/tokenize/count`) counts the conversation's text
(without the template's markup), and failing that the base's estimate stands in (logged).
A stream the client left early is counted the same way, on the output it had been sent.

A request the server refuses (a prompt over its context, say) gets a 200 and an empty stream when streamed:
the server raises inside its generator. The same request, not streamed, gets the refusal itself (a 400 with
`code: context_length_exceeded`), so an empty stream is asked again that way to learn why.

Tools, as the server's tool-calling handler (`--chat_format chatml-function-calling`) takes them, measured:
it shows the model the tools only when `tool_choice` is sent (tools without one go as "auto", which is what
OpenAI and Anthropic read then); "required" fails its assertion (with one tool it is that tool named, with
several it is refused, naming `tool_choice`); and it cannot stream a choice left to the model, so such a
request is asked for the whole answer and its events streamed from it (billed by the server's usage).

The API key is optional (no header when empty); `grammar` (GBNF) and `mirostat_*` pass through `extra`: the
fields below are the Jan spec's (its schemas are open, but the server ignores a field it does not know, so a
client's other fields are refused or dropped by the rule in upstreams/extras.py, not lost there).
System, assistant and tool contents are plain strings here; JSON schemas go as `json_object` + `schema`.
"""

import json
from collections.abc import Sequence

from core.encoding import compact_json
from core.errors import ErrorCode
from gateway.canonical import (
    Block,
    CanonicalRequest,
    ResponseFormat,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
    Usage,
)
from gateway.upstreams.base import RouteInfo, UpstreamError
from gateway.upstreams.extras import field_set
from gateway.upstreams.http1 import HttpError, UpstreamClient
from gateway.upstreams.openai_compatible import Json, OpenAICompatibleAdapter, logger
from gateway.upstreams.openai_errors import http_failure
from gateway.upstreams.openai_events import StreamState
from gateway.upstreams.openai_request import named_tool
from gateway.upstreams.registry import register

# CreateChatCompletionRequest and CreateCompletionRequest (spec 002).
CHAT_FIELDS = field_set(
    """
    frequency_penalty function_call functions grammar logit_bias logit_bias_type logprobs max_tokens messages
    min_p min_tokens mirostat_eta mirostat_mode mirostat_tau model n presence_penalty repeat_penalty
    response_format seed stop stream temperature tool_choice tools top_k top_logprobs top_p user
    """
)
COMPLETION_FIELDS = field_set(
    """
    best_of echo frequency_penalty grammar logit_bias logit_bias_type logprobs max_tokens min_p min_tokens
    mirostat_eta mirostat_mode mirostat_tau model n presence_penalty prompt repeat_penalty seed stop stream
    suffix temperature top_k top_p user
    """
)


def prompt_text(request: CanonicalRequest) -> str:
    if request.raw_prompt is not None:
        return request.raw_prompt
    lines: list[str] = []
    for message in request.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                lines.append(block.text)
            elif isinstance(block, ToolCallBlock):
                lines.append(f"{block.name} {block.arguments}")
            elif isinstance(block, ToolResultBlock):
                lines.extend(part.text for part in block.content if isinstance(part, TextBlock))
    lines.extend(json.dumps({"name": t.name, "parameters": t.parameters}) for t in request.tools)
    return "\n".join(lines)


def held_to_the_stream(counted: int, request: CanonicalRequest, state: StreamState) -> int:
    """The output's re-tokenized count, held within what the stream shows the server generated.

    Sampled, an answer is a token sequence the tokenizer need not make again: an ASCII answer the server cut
    at 20 tokens counted 21 once, 19 once, 18 once. Each chunk of text holds at least one token (one each in
    ASCII, unless the text could begin a stop sequence; a character's tokens together), so the chunks are a
    floor (not a tool call's, which are the server's own). An ASCII answer cannot have run past max_tokens: a
    ceiling. A non-ASCII one can: the server tests max_tokens only when its text ends on a whole character
    (27 tokens for 26, emoji at temperature 0).
    """
    if request.max_tokens is not None and all(part.isascii() for part in state.completion):
        counted = min(counted, request.max_tokens)
    if not state.tool_blocks:
        counted = max(counted, state.output_chunks)
    return counted


def _model_chooses_a_tool(request: CanonicalRequest) -> bool:
    """Tools offered with `tool_choice` auto, said or not (sent as "auto": `LlamaCppAdapter.tool_choice`)."""
    return bool(request.tools) and (request.tool_choice is None or request.tool_choice.mode == "auto")


@register
class LlamaCppAdapter(OpenAICompatibleAdapter):
    kind = "llamacpp"
    label = "llama.cpp / Jan"
    shortens_embeddings = False  # the Jan spec's embeddings request has no `dimensions`
    needs_credentials = False  # a local server may run without auth
    max_tokens_field = "max_tokens"
    reasoning_fields = ("reasoning_content",)
    message_names = False
    chat_fields = CHAT_FIELDS
    completion_fields = COMPLETION_FIELDS

    def __init__(self) -> None:
        super().__init__()
        self._special_tokens: dict[str, int] = {}  # by provider: what its tokenizer adds to any text

    def stream_options(self) -> Json | None:
        return None  # not in the server's schema, and it streams no usage anyway

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        """The server has no reasoning controls."""

    def streams(self, request: CanonicalRequest) -> bool:
        """A request that lets the model choose whether to call a tool is asked for the whole answer, and its
        events streamed from it: the server's handler cannot stream that choice ("Automatic streaming tool
        choice is not supported", an empty stream). Its usage is then the server's own."""
        return super().streams(request) and not _model_chooses_a_tool(request)

    def tool_choice(self, request: CanonicalRequest) -> str | Json | None:
        """The server's chat handler (chatml-function-calling) shows the model the tools only when
        `tool_choice` is sent, and takes "auto", "none" or one named function: without one it drops the
        tools (measured: the prompt came out without them), and "required" fails its assertion (a 500). So
        tools without a choice go as "auto", as OpenAI and Anthropic read them; "required" with one tool is
        that tool named; with several the server has no way to require one of them, which is refused."""
        choice = request.tool_choice
        if not request.tools or (choice is not None and choice.mode != "required"):
            return super().tool_choice(request)
        if choice is None:
            return "auto"
        if len(request.tools) == 1:
            return named_tool(request.tools[0].name)
        raise UpstreamError(
            ErrorCode.INVALID_REQUEST,
            f"tool_choice: {self.label} can require a call to one named tool, not to any of "
            f"{len(request.tools)}; name the tool to call, or send auto",
            param="tool_choice",
        )

    def response_format(self, fmt: ResponseFormat) -> Json:
        if fmt.type == "json_schema":
            return {"type": "json_object", "schema": fmt.schema or {}}
        return {"type": fmt.type}

    def content(self, role: str, blocks: Sequence[Block]) -> str | list[Json]:
        if role == "user":
            return super().content(role, blocks)
        return "".join(block.text for block in blocks if isinstance(block, TextBlock))

    def assistant_fields(self, blocks: Sequence[Block], out: Json) -> None:
        super().assistant_fields(blocks, out)
        out.setdefault("content", "")  # chat templates read it

    def count_url(self, route: RouteInfo) -> str:
        return f"{route.provider.base_url.rstrip('/').removesuffix('/v1')}/extras/tokenize/count"

    def _extras_url(self, route: RouteInfo, name: str) -> str:
        return f"{route.provider.base_url.rstrip('/').removesuffix('/v1')}/extras/{name}"

    async def _post_json(self, url: str, payload: Json, route: RouteInfo, client: UpstreamClient) -> Json:
        """POST `payload` to the server; its JSON answer (HttpStatusError for a 4xx or 5xx)."""
        async with client.post(
            url, compact_json(payload), self.json_headers(route), timeout=route.provider.timeout_seconds
        ) as resp:
            resp.raise_for_status()
            answer: Json = await resp.json()
            return answer

    async def _extras(self, route: RouteInfo, client: UpstreamClient, name: str, payload: Json) -> Json:
        """POST /extras/<name> (the Jan spec's tokenizer endpoints)."""
        return await self._post_json(self._extras_url(route, name), payload, route, client)

    async def tokenize(self, text: str, route: RouteInfo, client: UpstreamClient) -> list[int] | None:
        answer = await self._extras(
            route, client, "tokenize", {"model": route.upstream_model_id, "input": text}
        )
        return [int(token) for token in answer["tokens"]]

    async def detokenize(self, tokens: list[int], route: RouteInfo, client: UpstreamClient) -> str | None:
        answer = await self._extras(
            route, client, "detokenize", {"model": route.upstream_model_id, "tokens": tokens}
        )
        return str(answer["text"])

    async def count_text_tokens(self, text: str, route: RouteInfo, client: UpstreamClient) -> int | None:
        return await self.count(text, route, client)

    async def count(self, text: str, route: RouteInfo, client: UpstreamClient) -> int:
        payload = {"model": route.upstream_model_id, "input": text}
        return int((await self._post_json(self.count_url(route), payload, route, client))["count"])

    async def empty_stream_error(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> UpstreamError:
        body = {**self.build_body(request, route), "stream": False, "max_tokens": 1}
        # The server drops its kept-alive connections after such a failure: the client sends again on a
        # new one when a kept one closes before answering.
        try:
            async with client.post(
                self.url_for(request, route),
                compact_json(body),
                self.json_headers(route),
                timeout=route.provider.timeout_seconds,
            ) as resp:
                if resp.status >= 400:
                    text = await resp.text(errors="replace")
                    return http_failure(route.provider.slug, resp.status, text)
        except (HttpError, TimeoutError) as exc:
            logger.warning("%s: asking why the stream was empty failed (%s)", route.provider.slug, exc)
        return await super().empty_stream_error(request, route, client)

    async def prompt_tokens(self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient) -> int:
        body = {**self.build_body(request, route), "stream": False, "max_tokens": 1}
        answer = await self._post_json(self.url_for(request, route), body, route, client)
        return int(answer["usage"]["prompt_tokens"])

    async def count_prompt_tokens(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> int | None:
        # The server's own count, chat template included: a one-token answer's prompt usage.
        return await self.prompt_tokens(request, route, client)

    async def special_tokens(self, route: RouteInfo, client: UpstreamClient) -> int:
        """What the tokenizer adds to any text (a BOS token, for some models): its count of "", once."""
        if route.provider.slug not in self._special_tokens:
            self._special_tokens[route.provider.slug] = await self.count("", route, client)
        return self._special_tokens[route.provider.slug]

    async def completion_tokens(self, route: RouteInfo, client: UpstreamClient, state: StreamState) -> int:
        generated = "".join(state.completion)
        if not generated:
            return 0
        try:
            return await self.count(generated, route, client) - await self.special_tokens(route, client)
        except (HttpError, TimeoutError, ValueError, KeyError) as exc:
            logger.warning("%s: counting the output failed (%s); counting chunks", route.provider.slug, exc)
            return state.output_chunks

    async def usage_when_cancelled(
        self,
        request: CanonicalRequest,
        route: RouteInfo,
        client: UpstreamClient,
        generated: Sequence[str],
    ) -> Usage | None:
        state = StreamState(output_chunks=len(generated), completion=list(generated))
        return await self.fallback_usage(request, route, client, state)

    async def fallback_usage(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient, state: StreamState
    ) -> Usage:
        completion = held_to_the_stream(await self.completion_tokens(route, client, state), request, state)
        try:
            return Usage(
                prompt_tokens=await self.prompt_tokens(request, route, client), completion_tokens=completion
            )
        except (HttpError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: usage probe failed (%s); counting the text instead", route.provider.slug, exc)
        try:
            prompt = await self.count(prompt_text(request), route, client)
        except (HttpError, TimeoutError, ValueError, KeyError) as exc:
            logger.warning("%s: token count failed (%s)", route.provider.slug, exc)
            return await super().fallback_usage(request, route, client, state)
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
