"""The bare proxy: the floor a Python gateway on this stack can reach, measured beside it in every run.

uvicorn (the gateway's own server settings: workers, uvloop, httptools, no access log) and one pooled aiohttp
session per worker, forwarding each POST's body to the mock upstream and streaming the answer back as it
comes. No authentication, validation, translation, routing, metering or records: what is left of the
gateway's cost once everything it does is taken away. `bench.run` drives it as the `bare` target, so each
run prints the gateway's throughput as a share of it, its added latency over it and its CPU per request.

    BENCH_UPSTREAM_URL=http://127.0.0.1:P/v1/chat/completions BENCH_UPSTREAM_KEY=… \\
    uvicorn bench.bare_proxy:app --workers 2 --loop uvloop --http httptools --no-access-log
"""

import os
from typing import Any

import aiohttp

Scope = dict[str, Any]


async def read_body(receive: Any) -> bytes:
    """The request's body, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class BareProxy:
    def __init__(self) -> None:
        self.url = os.environ.get("BENCH_UPSTREAM_URL", "")
        self.headers = {
            "Authorization": f"Bearer {os.environ.get('BENCH_UPSTREAM_KEY', '')}",
            "Content-Type": "application/json",
        }
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.forward(scope, receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # As the gateway's pool: unlimited connections, kept alive.
                self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await self.started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def started(self) -> None:
        """What a subclass prepares once the session is there (bench/metered_floor.py: its scripts)."""

    async def forward(self, scope: Scope, receive: Any, send: Any) -> None:
        body = await read_body(receive)
        assert self.session is not None, "the lifespan starts the session"
        async with self.session.post(self.url, data=body, headers=self.headers) as upstream:
            content_type = upstream.headers.get("Content-Type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status,
                    "headers": [(b"content-type", content_type)],
                }
            )
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


app = BareProxy()
