"""Real-HTTP fakes of the OpenAI-style upstream dialects: cerebras, fireworks, baseten, llamacpp (Jan).

Each follows its spec document (paths, auth scheme, chunk shapes, where reasoning and usage go, error
bodies) and records every request it receives. Usage from another test:

    with openai_fake("cerebras", Scenario(text="Hello there")) as fake:
        route = fake.route()                       # a RouteInfo pointing at the fake
        ...                                        # run the gateway / an adapter against it
        fake.chat_requests[-1].body                # what was sent (also .headers, .path)
        fake.scenario = Scenario(failure="rate_limited")   # change the behaviour between calls

Scenario fields choose the answer (text, reasoning, tool calls, usage numbers) or a failure mode
(tests/fakes/openai_scenario.py). This module is the server: its endpoints, auth, schema checks and failure
modes; what each dialect's spec fixes is in openai_dialect_specs.py, the bodies it answers with in
openai_dialect_answers.py.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from aiohttp import web

from gateway.upstreams.base import ProviderInfo, RouteInfo
from tests.fakes.openai_dialect_answers import DialectAnswers
from tests.fakes.openai_dialect_specs import CLOSED_FIELDS, COMPLETION_FIELDS, FAILURE_STATUS, PATH_PREFIX
from tests.fakes.openai_scenario import Dialect, RecordedRequest, Scenario, pieces, step
from tests.fakes.server import CUT_AFTER_S, FakeServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DialectFake(DialectAnswers):
    def __init__(self, dialect: Dialect, scenario: Scenario, api_key: str):
        self.dialect = dialect
        self.scenario = scenario
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.url = ""  # set when started
        self._stopping: asyncio.Event | None = None
        self.in_flight = 0  # chat and embeddings requests being answered now
        self.most_in_flight = 0  # the most at once since started

    @property
    def base_url(self) -> str:
        return self.url + PATH_PREFIX[self.dialect]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == PATH_PREFIX[self.dialect] + "/completions"]

    def route(self, model: str = "fake-model", timeout: float = 5.0, api_key: str | None = None, **options):
        key = self.api_key if api_key is None else api_key
        provider = ProviderInfo(self.dialect, self.dialect, self.base_url, key, timeout)
        return RouteInfo(provider=provider, upstream_model_id=model, options=options)

    # --- The aiohttp application ----------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH_PREFIX[self.dialect] + "/chat/completions", self._counted(self._chat))
        if self.dialect in COMPLETION_FIELDS:
            app.router.add_post(PATH_PREFIX[self.dialect] + "/completions", self._completions)
        if self.dialect == "llamacpp":  # the Jan spec's /v1/embeddings (also an OpenAI-compatible server's)
            app.router.add_post(PATH_PREFIX[self.dialect] + "/embeddings", self._counted(self._embeddings))
        if self.dialect == "llamacpp":
            app.router.add_post("/extras/tokenize/count", self._count)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def _counted(self, handler: Handler) -> Handler:
        """The handler, counted while it answers (a stream: until its last frame is written)."""

        async def counted(request: web.Request) -> web.StreamResponse:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await handler(request)
            finally:
                self.in_flight -= 1

        return counted

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
        allowed = CLOSED_FIELDS.get(self.dialect)
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
        if scenario.failure in FAILURE_STATUS:
            message = "Overloaded" if scenario.failure == "overloaded" else f"fake {scenario.failure}"
            response = self._error(FAILURE_STATUS[scenario.failure], message)
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
            if number and s.frame_interval:
                await asyncio.sleep(s.frame_interval)
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

    # --- Legacy text completions (Cerebras, Jan) ------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        s = self.scenario
        if not self._authorized(request):
            return self._error(401, "Invalid API key", "wrong_api_key")
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or "messages" in body:
            return self._error(400, "expected a completion request with a string prompt")
        if unknown := sorted(set(body) - COMPLETION_FIELDS[self.dialect]):
            return self._error(400, f"Extra inputs are not permitted: {unknown}")
        if s.failure in FAILURE_STATUS:
            return self._error(FAILURE_STATUS[s.failure], f"fake {s.failure}")
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
        if s.failure in FAILURE_STATUS:
            return self._error(FAILURE_STATUS[s.failure], f"fake {s.failure}")
        if s.failure == "slow_first_byte":  # then the answer, as a chat's
            await self._wait(s.delay)
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
