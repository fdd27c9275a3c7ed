"""A fast mock of an OpenAI-compatible upstream: `POST /v1/chat/completions`, streamed or not.

Run in its own process (`python -m bench.mock_upstream --port P --tokens N`) so that it does not share an
event loop, or a CPU-bound interpreter, with the load generator. Every answer is the same N content deltas
("tok0 ", "tok1 ", ...); the bytes are built once at start-up, so a request costs little more than parsing
its JSON body. Streaming answers follow the OpenAI dialect: a role frame, N content deltas, a finish frame,
a usage chunk (when `stream_options.include_usage` is set, as the gateway always asks) and `data: [DONE]`.

`--delay-ms` adds a pause before the first byte (default 0: no artificial delay). `--interval-ms` adds one
between a stream's frames, as a model's tokens come a few milliseconds apart (default 0: the whole answer at
once, which lets a proxy read and send it in a few writes). `--api-key` makes the mock answer 401 to any
other bearer token, which proves that the gateway forwards the provider's credentials.
"""

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

PROMPT_TOKENS_PER_CHAR = 0.25  # a rough tokenizer: the mock does not need a real one


class Answers:
    """The byte strings of one answer, prepared once."""

    def __init__(self, tokens: int):
        self.tokens = tokens
        self.pieces = [f"tok{i} " for i in range(tokens)]

    def _chunk(self, model: str, created: int, delta: dict[str, Any], finish: str | None) -> bytes:
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def stream_frames(self, model: str, usage: dict[str, Any], include_usage: bool) -> list[bytes]:
        created = int(time.time())
        frames = [self._chunk(model, created, {"role": "assistant", "content": ""}, None)]
        frames += [self._chunk(model, created, {"content": piece}, None) for piece in self.pieces]
        frames.append(self._chunk(model, created, {}, "stop"))
        if include_usage:
            usage_chunk = {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            frames.append(b"data: " + json.dumps(usage_chunk, separators=(",", ":")).encode() + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        return frames

    def completion(self, model: str, usage: dict[str, Any]) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.pieces)},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return json.dumps(body, separators=(",", ":")).encode()


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, Any]:
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
    prompt = max(1, int(chars * PROMPT_TOKENS_PER_CHAR))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def make_app(
    tokens: int, delay_ms: float = 0.0, api_key: str = "", interval_ms: float = 0.0
) -> web.Application:
    answers = Answers(tokens)
    cache: dict[tuple[str, int, bool], list[bytes]] = {}  # (model, prompt tokens, include_usage) → frames
    expected_auth = f"Bearer {api_key}" if api_key else ""
    stats = {"requests": 0}

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        stats["requests"] += 1
        if expected_auth and request.headers.get("Authorization") != expected_auth:
            return web.json_response(
                {"error": {"message": "bad upstream key", "type": "invalid_request_error"}}, status=401
            )
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        model = str(body.get("model") or "bench")
        usage = _usage(body, tokens)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if not body.get("stream"):
            return web.Response(body=answers.completion(model, usage), content_type="application/json")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        key = (model, usage["prompt_tokens"], include_usage)
        frames = cache.get(key)
        if frames is None:
            frames = cache[key] = answers.stream_frames(model, usage, include_usage)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for number, frame in enumerate(frames):  # one write per frame, as a real server flushes each token
            if interval_ms and number:
                await asyncio.sleep(interval_ms / 1000)
            await response.write(frame)
        await response.write_eof()
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "requests": stats["requests"]})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=20, help="content deltas per answer (default 20)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="pause before the first byte (default 0)")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="pause between frames (default 0)")
    parser.add_argument("--api-key", default="", help="require this bearer token (default: any)")
    args = parser.parse_args()
    app = make_app(args.tokens, args.delay_ms, args.api_key, args.interval_ms)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        shutdown_timeout=1.0,
        loop=new_event_loop(),
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it is, with uvicorn[standard]), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main()
