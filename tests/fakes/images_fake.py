"""A real-HTTP fake of an OpenAI-compatible images endpoint (POST /v1/images/generations), its failure
modes included, recording what it was sent.

    with images_fake("ok") as fake:
        backend = OpenAIImages(fake.base_url, "img-key", "gpt-image-1")
"""

import asyncio
import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.fakes.server import FakeServer

Mode = Literal["ok", "ok_url", "content_policy", "unauthorized", "rate_limited", "server_error", "slow"]
IMAGE_URL = "https://images.example/generated.png"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake image bytes").decode()
_FAILURES = {
    "content_policy": (400, "Your request was rejected by the safety system.", "content_policy_violation"),
    "unauthorized": (401, "Incorrect API key provided: img-****", "invalid_api_key"),
    "rate_limited": (429, "Rate limit reached for images per minute", "rate_limit_exceeded"),
    "server_error": (500, "The server had an error processing your request.", None),
}


@dataclass
class ImagesFake:
    mode: Mode
    api_key: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/images/generations", self._generate)
        return app

    async def _generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(*_FAILURES["unauthorized"])
        if self.mode == "slow":
            await asyncio.sleep(2)
        if self.mode in _FAILURES:
            return _error(*_FAILURES[self.mode])
        image = {"url": IMAGE_URL} if self.mode == "ok_url" else {"b64_json": PNG}
        data = [{**image, "revised_prompt": body["prompt"]}]
        return web.json_response({"created": 1733000000, "data": data})


def _error(status: int, message: str, code: str | None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return web.json_response({"error": error}, status=status)


@contextmanager
def images_fake(mode: Mode = "ok", api_key: str = "img-key") -> Iterator[ImagesFake]:
    fake = ImagesFake(mode, api_key)
    with FakeServer(fake.app()) as server:
        fake.url = server.url
        yield fake
