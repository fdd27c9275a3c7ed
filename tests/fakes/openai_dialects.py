"""Real-HTTP fakes of the OpenAI-style upstream dialects: cerebras, fireworks, baseten, llamacpp (Jan).

Each follows its spec document (paths, auth scheme, chunk shapes, where reasoning and usage go, error
bodies) and records every request it receives. Usage from another test:

    with openai_fake("cerebras", Scenario(text="Hello there")) as fake:
        route = fake.route()                       # a RouteInfo pointing at the fake
        ...                                        # run the gateway / an adapter against it
        fake.chat_requests[-1].body                # what was sent (also .headers, .path)
        fake.scenario = Scenario(failure="rate_limited")   # change the behaviour between calls

Scenario fields choose the answer (text, reasoning, tool calls, usage numbers) or a failure mode.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from aiohttp import web

from gateway.upstreams.base import ProviderInfo, RouteInfo
from tests.fakes.openai_scenario import (
    CEREBRAS_TIME_INFO,
    Dialect,
    RecordedRequest,
    Scenario,
    fireworks_perf_metrics,
    pieces,
    step,
)
from tests.fakes.server import CUT_AFTER_S, FakeServer

_PREFIX = {"cerebras": "/v1", "fireworks": "/inference/v1", "baseten": "/v1", "llamacpp": "/v1"}
# Baseten's and Jan's schemas name no reasoning field; their reasoning servers (vLLM, llama.cpp) use this one.
_REASONING_FIELD = {
    "cerebras": "reasoning",
    "fireworks": "reasoning_content",
    "baseten": "reasoning_content",
    "llamacpp": "reasoning_content",
}
# The error `type` a status comes with (Cerebras' in-stream ErrorChunkContent, OpenAI's classes).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "invalid_request_error",
    404: "not_found_error",
    429: "too_many_requests_error",
}
_STATUS = {
    "server_error": 500,
    "rate_limited": 429,
    "unauthorized": 401,
    "overloaded": 529,
    "context_length": 400,
}
# Top-level request fields of the dialects whose schemas are closed (additionalProperties: false).
_CEREBRAS_FIELDS = """
    model stream messages frequency_penalty logit_bias logprobs top_logprobs max_tokens max_completion_tokens
    min_tokens min_completion_tokens n presence_penalty reasoning_effort disable_reasoning clear_thinking
    reasoning_format response_format seed service_tier stop stream_options temperature top_p tools tool_choice
    parallel_tool_calls user prediction prompt_cache_key
"""
_FIREWORKS_FIELDS = """
    context_length_exceeded_behavior echo echo_last frequency_penalty function_call functions ignore_eos
    logit_bias logprobs max_completion_tokens max_tokens messages metadata min_p mirostat_lr mirostat_target
    model n parallel_tool_calls perf_metrics_in_response prediction presence_penalty
    prompt_cache_isolation_key prompt_truncate_len raw_output reasoning_effort reasoning_history
    repetition_penalty response_format
    return_token_ids seed speculation stop stream temperature thinking tool_choice tools top_k top_logprobs
    top_p typical_p user
"""
_BASETEN_FIELDS = """
    add_generation_prompt add_special_tokens bad bad_token_ids best_of chat_template chat_template_args
    disaggregated_params documents early_stopping echo frequency_penalty ignore_eos include_stop_str_in_output
    length_penalty logit_bias logprobs max_tokens messages min_p min_tokens model n parallel_tool_calls
    presence_penalty repetition_penalty response_format seed skip_special_tokens spaces_between_special_tokens
    stop stop_token_ids stream stream_options temperature tool_choice tools top_k top_logprobs top_p top_p_min
    truncate_prompt_tokens user
"""
# The text completions request fields of the dialects whose spec has that endpoint (Cerebras'
# CompletionRequest, Jan's CreateCompletionRequest): the fake refuses any other, as a strict server would.
_CEREBRAS_COMPLETION_FIELDS = """
    model stream prompt best_of return_raw_tokens echo frequency_penalty logit_bias logprobs max_tokens
    min_tokens grammar_root n presence_penalty seed stop stream_options suffix temperature top_p user
    prompt_cache_key reasoning_format
"""
_JAN_COMPLETION_FIELDS = """
    prompt suffix max_tokens min_tokens temperature top_p min_p echo stop stream logprobs presence_penalty
    frequency_penalty logit_bias seed model n best_of user top_k repeat_penalty logit_bias_type
    mirostat_mode mirostat_tau mirostat_eta grammar
"""
_COMPLETION_FIELDS = {
    "cerebras": frozenset(_CEREBRAS_COMPLETION_FIELDS.split()),
    "llamacpp": frozenset(_JAN_COMPLETION_FIELDS.split()),
}
_CLOSED_FIELDS = {
    "cerebras": frozenset(_CEREBRAS_FIELDS.split()),
    "fireworks": frozenset(_FIREWORKS_FIELDS.split()),
    "baseten": frozenset(_BASETEN_FIELDS.split()),
}


# What the fakes report beside usage: Cerebras' TimeInfo, Fireworks' perf_metrics (when asked for).
class DialectFake:
    def __init__(self, dialect: Dialect, scenario: Scenario, api_key: str):
        self.dialect = dialect
        self.scenario = scenario
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.url = ""  # set when started
        self._stopping: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return self.url + _PREFIX[self.dialect]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == _PREFIX[self.dialect] + "/completions"]

    def route(self, model: str = "fake-model", timeout: float = 5.0, api_key: str | None = None, **options):
        key = self.api_key if api_key is None else api_key
        provider = ProviderInfo(self.dialect, self.dialect, self.base_url, key, timeout)
        return RouteInfo(provider=provider, upstream_model_id=model, options=options)

    # --- The aiohttp application ----------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(_PREFIX[self.dialect] + "/chat/completions", self._chat)
        if self.dialect in _COMPLETION_FIELDS:
            app.router.add_post(_PREFIX[self.dialect] + "/completions", self._completions)
        if self.dialect == "llamacpp":  # the Jan spec's /v1/embeddings (also an OpenAI-compatible server's)
            app.router.add_post(_PREFIX[self.dialect] + "/embeddings", self._embeddings)
        if self.dialect == "llamacpp":
            app.router.add_post("/extras/tokenize/count", self._count)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self._stopping = asyncio.Event()

    async def _on_shutdown(self, app: web.Application) -> None:
        self._stopping.set()

    async def _wait(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _record(self, request: web.Request) -> Any:
        body = await request.json()
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body))
        return body

    def _authorized(self, request: web.Request) -> bool:
        if self.dialect == "llamacpp" and not self.api_key:
            return True
        scheme = "Api-Key" if self.dialect == "baseten" else "Bearer"
        return request.headers.get("Authorization") == f"{scheme} {self.api_key}"

    def _error(self, status: int, message: str, code: str | None = None) -> web.Response:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        if self.dialect == "cerebras":  # Cerebras errors are flat: {"message", "type", "param", "code"}
            return web.json_response(error, status=status)
        if self.dialect == "baseten":  # vLLM-style
            return web.json_response({"object": "error", **error, "code": status}, status=status)
        return web.json_response({"error": error}, status=status)

    def _rejection(self, body: Any) -> str | None:
        """Why the request breaks the dialect's schema, or None."""
        if not isinstance(body, dict) or not body.get("messages"):
            return "expected a chat request"
        allowed = _CLOSED_FIELDS.get(self.dialect)
        if allowed and (unknown := sorted(set(body) - allowed)):
            return f"Extra inputs are not permitted: {unknown}"
        if self.dialect == "baseten" and body.get("n", 1) != 1:
            return "Only n=1 is supported"
        if self.dialect == "fireworks":
            message_fields = {"role", "content", "reasoning_content", "tool_calls", "tool_call_id"}
            if any(set(m) - message_fields for m in body["messages"]):
                return "Extra inputs are not permitted in messages"
            if "thinking" in body and "reasoning_effort" in body:
                return "thinking and reasoning_effort cannot be specified together"
        return None

    def _prompt_probe(self, body: dict) -> bool:
        """llama.cpp's usage probe: the same chat, not streamed, one token (the server then reports usage)."""
        return self.dialect == "llamacpp" and body.get("stream") is False and body.get("max_tokens") == 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        scenario = self.scenario
        if not self._authorized(request) or scenario.failure == "unauthorized":
            return self._error(401, "Invalid API key", "wrong_api_key")
        if (problem := self._rejection(body)) is not None:
            return self._error(422 if self.dialect == "fireworks" else 400, problem)
        if scenario.failure == "context_length":
            message = (
                "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."
            )
            return self._error(400, message, "context_length_exceeded")
        if scenario.failure == "http_error":
            return self._error(scenario.error_status, scenario.error_message, scenario.error_code)
        if scenario.failure in _STATUS:
            message = "Overloaded" if scenario.failure == "overloaded" else f"fake {scenario.failure}"
            response = self._error(_STATUS[scenario.failure], message)
            if scenario.failure == "rate_limited":
                response.headers["Retry-After"] = str(scenario.retry_after)
            return response
        if self._prompt_probe(body):
            usage = {"prompt_tokens": scenario.prompt_tokens, "completion_tokens": 1}
            return web.json_response({"object": "chat.completion", "choices": [], "usage": usage})
        if body.get("stream") is not True:
            return await self._whole(request, step(scenario, body), body)
        if scenario.failure == "slow_first_byte":
            await self._wait(scenario.delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        with suppress(ConnectionResetError):  # the client gave up (a timeout test): nothing left to send
            await self._stream(request, response, step(scenario, body), body)
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, s: Scenario, body: dict
    ) -> None:
        await response.prepare(request)
        for number, frame in enumerate(self._frames(s, body)):
            if number == 2 and await self._fail_mid_stream(request, response, s):
                return
            if number == 3 and s.failure == "pause":
                await self._wait(s.delay)
            await response.write(b"data: " + frame.encode() + b"\n\n")
            if number == 0 and s.failure == "stall":
                await self._wait(s.delay)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()

    async def _fail_mid_stream(self, request: web.Request, response: web.StreamResponse, s: Scenario) -> bool:
        if s.failure == "cut":
            await asyncio.sleep(CUT_AFTER_S)
            request.transport.close()
        elif s.failure == "malformed":
            await response.write(b'data: {"id": "chatcmpl-fake", "choices": [\n\n')
        elif s.failure == "stream_error":
            await response.write(b"data: " + json.dumps(self._error_object(s)).encode() + b"\n\n")
        else:
            return False
        return True

    # --- A whole (non-streamed) answer, with the failure modes that fit one ---------------------------
    async def _whole(self, request: web.Request, s: Scenario, body: dict) -> web.StreamResponse:
        """`slow_first_byte`, `stall` and `pause` answer after `delay`; `cut` drops the connection instead;
        `malformed` answers a 200 that is not JSON; `stream_error` a 200 that is the dialect's error object
        (Cerebras' CreateChatCompletionResponse admits its ErrorChunkResponse); `unfinished` has no
        finish_reason."""
        if s.failure in ("slow_first_byte", "stall", "pause"):
            await self._wait(s.delay)
        if s.failure == "cut":
            await asyncio.sleep(CUT_AFTER_S)
            request.transport.close()
            return web.Response()
        if s.failure == "malformed":
            return web.Response(
                status=200, text='{"id": "chatcmpl-fake", "choices": [', content_type="application/json"
            )
        if s.failure == "stream_error":
            return web.json_response(self._error_object(s))
        return web.json_response(self._answer(s, body))

    def _answer(self, s: Scenario, body: dict) -> dict:
        """A `chat.completion`: the message the stream's deltas add up to, usage as the dialect reports it."""
        message: dict[str, Any] = {"role": "assistant", "content": (s.text + s.text_after_tool_calls) or None}
        if s.reasoning:
            message[_REASONING_FIELD[self.dialect]] = s.reasoning
        if s.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in s.tool_calls
            ]
        finish = (
            None
            if s.failure == "unfinished"
            else s.finish_reason or ("tool_calls" if s.tool_calls else "stop")
        )
        answer = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1721088719}
        answer |= {"model": body.get("model", ""), "system_fingerprint": "fp_fake"}
        answer["choices"] = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]
        return answer | self._whole_usage(s, body)

    def _whole_usage(self, s: Scenario, body: dict) -> dict:
        """What a whole answer reports beside its choices: usage (every dialect, llama.cpp too), Cerebras'
        time_info, Fireworks' perf_metrics when asked for."""
        extras: dict[str, Any] = {"usage": self._usage(s)}
        if self.dialect == "cerebras":
            extras["time_info"] = dict(CEREBRAS_TIME_INFO)
        elif self.dialect == "fireworks" and body.get("perf_metrics_in_response"):
            extras["perf_metrics"] = fireworks_perf_metrics(s)
        return extras

    def _error_object(self, s: Scenario) -> dict:
        kind = _ERROR_TYPES.get(s.stream_error_status, "server_error")
        error = {"message": s.stream_error_message, "type": kind, "code": None}
        if self.dialect == "cerebras":
            return {"status_code": s.stream_error_status, "error": error}
        return {"error": {**error, "code": s.stream_error_status}}

    # --- What a successful stream looks like, per dialect -----------------------------------------
    def _frames(self, s: Scenario, body: dict) -> list[str]:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1721088719}
        base |= {"model": body.get("model", ""), "system_fingerprint": "fp_fake"}
        deltas: list[dict] = [{"role": "assistant", "content": ""}]
        deltas += [{_REASONING_FIELD[self.dialect]: p} for p in pieces(s.reasoning, s.piece)]
        deltas += [{"content": p} for p in pieces(s.text, s.piece)]
        for i, call in enumerate(s.tool_calls):
            head = {
                "index": i,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            deltas.append({"tool_calls": [head]})
            deltas += [
                {"tool_calls": [{"index": i, "function": {"arguments": p}}]}
                for p in pieces(call.arguments, 4)
            ]
        deltas += [{"content": p} for p in pieces(s.text_after_tool_calls, s.piece)]
        chunks = [base | {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        if s.failure == "unfinished":
            return [json.dumps(chunk) for chunk in chunks]
        finish = s.finish_reason or ("tool_calls" if s.tool_calls else "stop")
        chunks.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        self._add_usage(chunks, s, body, base)
        return [json.dumps(chunk) for chunk in chunks]

    def _usage(self, s: Scenario, completion: int | None = None) -> dict:
        usage = {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens}
        if completion is not None:
            usage["completion_tokens"] = completion
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.dialect == "llamacpp":  # Jan's CompletionUsage: the three counts only
            return usage
        usage["prompt_tokens_details"] = {"cached_tokens": s.cached_tokens}
        if self.dialect != "fireworks":  # Fireworks' UsageInfo has no completion details
            usage["completion_tokens_details"] = {"reasoning_tokens": s.reasoning_tokens}
        return usage

    def _add_usage(self, chunks: list[dict], s: Scenario, body: dict, base: dict) -> None:
        if self.dialect == "cerebras":  # usage and time_info ride on the finish chunk
            chunks[-1] |= {"usage": self._usage(s), "time_info": dict(CEREBRAS_TIME_INFO)}
        elif self.dialect == "fireworks":  # always, on the finish chunk
            chunks[-1]["usage"] = self._usage(s)
            if body.get("perf_metrics_in_response"):
                chunks[-1]["perf_metrics"] = fireworks_perf_metrics(s)
        elif self.dialect == "baseten":
            options = body.get("stream_options") or {}
            if options.get("continuous_usage_stats", True):  # the spec's default: running totals each chunk
                for number, chunk in enumerate(chunks[:-1]):
                    chunk["usage"] = self._usage(s, min(number, s.completion_tokens))
                chunks[-1]["usage"] = self._usage(s)
            if options.get("include_usage", True):
                chunks.append(base | {"choices": [], "usage": self._usage(s)})
        # llamacpp: no usage in the stream, whatever was asked

    # --- Legacy text completions (Cerebras, Jan) ------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        s = self.scenario
        if not self._authorized(request):
            return self._error(401, "Invalid API key", "wrong_api_key")
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or "messages" in body:
            return self._error(400, "expected a completion request with a string prompt")
        if unknown := sorted(set(body) - _COMPLETION_FIELDS[self.dialect]):
            return self._error(400, f"Extra inputs are not permitted: {unknown}")
        if s.failure in _STATUS:
            return self._error(_STATUS[s.failure], f"fake {s.failure}")
        base = {"id": "cmpl-fake", "object": "text_completion", "created": 1721088719, "model": body["model"]}
        if self._prompt_probe(body):
            usage = {"prompt_tokens": s.prompt_tokens, "completion_tokens": 1}
            return web.json_response(base | {"choices": [], "usage": usage})
        if body.get("stream") is not True:
            finish = s.finish_reason or "stop"
            choice = {"index": 0, "text": s.text, "logprobs": None, "finish_reason": finish}
            return web.json_response(base | {"choices": [choice]} | self._whole_usage(s, body))
        chunks = [
            base | {"choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]}
            for piece in pieces(s.text, s.piece)
        ]
        finish = s.finish_reason or "stop"
        last = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish}
        chunks.append(base | {"choices": [last]})
        self._add_usage(chunks, s, body, base)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # --- Embeddings (Jan: CreateEmbeddingRequest {input, model?, user?}; OpenAI adds dimensions) --------
    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        s = self.scenario
        if not self._authorized(request):
            return self._error(401, "Invalid API key", "wrong_api_key")
        if s.failure == "http_error":
            return self._error(s.error_status, s.error_message, s.error_code)
        if s.failure in _STATUS:
            return self._error(_STATUS[s.failure], f"fake {s.failure}")
        texts = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
        size = body.get("dimensions") or s.embedding_size
        data = []
        for index, text in enumerate(texts):
            words = str(text).split() or [""]
            # Token t of input i: the numbers i + t + k/10 (k < size), so pooling is checkable by hand.
            tokens = [[index + t + k / 10 for k in range(size)] for t in range(len(words))]
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": tokens if s.embedding_per_token else tokens[0],
                }
            )
        prompt = sum(len(str(text).split()) for text in texts)
        usage = {"prompt_tokens": prompt, "total_tokens": prompt}
        return web.json_response(
            {"object": "list", "data": data[::-1], "model": body.get("model"), "usage": usage}
        )

    async def _count(self, request: web.Request) -> web.Response:
        """The fake tokenizer: one token per whitespace-separated word, plus a BOS token."""
        body = await self._record(request)
        if not self._authorized(request):
            return self._error(401, "Invalid API key")
        return web.json_response({"count": len(body["input"].split()) + 1})


@contextmanager
def openai_fake(
    dialect: Dialect, scenario: Scenario | None = None, *, api_key: str = "test-key"
) -> Iterator[DialectFake]:
    fake = DialectFake(dialect, scenario or Scenario(), api_key)
    with FakeServer(fake.app()) as server:
        fake.url = server.url
        yield fake
