"""The `image` server tool (ADR 0013): an image from a text description, by a configured backend.

- `openai`: any OpenAI-compatible images endpoint, `POST {IMAGE_GENERATION_URL}/images/generations` with
  `response_format: b64_json` (the image comes back as a `data:` URL; an endpoint that answers with a `url`
  only is passed on as that URL).
- `sandbox`: a small PNG drawn here from the prompt's hash, offline, and said to be a sandbox image.
A failure (refused prompt, the service down or slow) is an error result the model reads, billed nothing; the
service's body and the key never reach it. Billed per image.
"""

import base64
import hashlib
import struct
import zlib
from typing import Any, ClassVar, Protocol

import aiohttp

from gateway.tools.base import ServerTool, ToolContext, ToolOutcome

SIZES = ("1024x1024", "1024x1536", "1536x1024")
TIMEOUT_SECONDS = 60.0
MAX_PROMPT = 4_000


class ImageFailed(Exception):
    """The image could not be made; the message says why, for the model."""


class ImageBackend(Protocol):
    name: str

    async def generate(self, prompt: str, size: str, session: aiohttp.ClientSession) -> str:
        """The image as a data: URL (or an https URL). Raises ImageFailed."""


class OpenAIImages:
    name = "openai"

    def __init__(self, url: str, api_key: str, model: str, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self.url, self.api_key, self.model = url.rstrip("/"), api_key, model
        self.timeout_seconds = timeout_seconds

    async def generate(self, prompt: str, size: str, session: aiohttp.ClientSession) -> str:
        body = {"model": self.model, "prompt": prompt, "n": 1, "size": size, "response_format": "b64_json"}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            async with session.post(
                f"{self.url}/images/generations",
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            ) as response:
                if response.status != 200:
                    raise ImageFailed(_refusal(response.status, await _error_code(response)))
                data = (await response.json()).get("data") or [{}]
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ImageFailed(f"the image service did not answer ({type(exc).__name__})") from exc
        first = data[0] if isinstance(data[0], dict) else {}
        if first.get("b64_json"):
            return f"data:image/png;base64,{first['b64_json']}"
        if isinstance(first.get("url"), str) and first["url"].startswith("https://"):
            return first["url"]
        raise ImageFailed("the image service returned no image")


async def _error_code(response: aiohttp.ClientResponse) -> str:
    try:
        error = (await response.json()).get("error") or {}
    except (aiohttp.ContentTypeError, ValueError):
        return ""
    return str(error.get("code") or "") if isinstance(error, dict) else ""


def _refusal(status: int, code: str) -> str:
    if status == 400 and code in ("content_policy_violation", "moderation_blocked"):
        return "the image service refused the prompt under its content policy"
    if status == 400:
        return "the image service refused the request"
    if status == 429:
        return "the image service is rate limiting; try again later"
    if status in (401, 403):
        return "the image service refused the gateway's credentials"
    return f"the image service failed (HTTP {status})"


class SandboxImages:
    """Offline: a 64 by 64 gradient whose colours come from the prompt, so each prompt has its own picture."""

    name = "sandbox"

    async def generate(self, prompt: str, size: str, session: aiohttp.ClientSession) -> str:
        return "data:image/png;base64," + base64.b64encode(sandbox_png(prompt)).decode()


def sandbox_png(prompt: str, side: int = 64) -> bytes:
    r, g, b = hashlib.sha256(prompt.encode()).digest()[:3]
    rows = b"".join(
        b"\x00" + bytes(channel for x in range(side) for channel in ((r + x) % 256, (g + y) % 256, b))
        for y in range(side)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class ImageGeneration(ServerTool):
    name: ClassVar[str] = "image"
    description: ClassVar[str] = (
        "Generate an image from a text description. The image is shown to the user; you get a confirmation."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "description": "What the image shows, in detail."},
            "size": {"type": "string", "enum": list(SIZES)},
        },
        "required": ["prompt"],
        "additionalProperties": False,
    }
    max_units: ClassVar[dict[str, int]] = {"image": 1}

    def __init__(self, backend: ImageBackend) -> None:
        self.backend = backend

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        prompt = arguments.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return ToolOutcome.failed("prompt must be a non-empty string")
        size = arguments.get("size") or SIZES[0]
        if size not in SIZES:
            return ToolOutcome.failed(f"size must be one of {', '.join(SIZES)}")
        try:
            image = await self.backend.generate(prompt.strip()[:MAX_PROMPT], size, context.session)
        except ImageFailed as exc:
            return ToolOutcome.failed(str(exc))
        made_by = (
            " (a sandbox image: no image service is configured)" if self.backend.name == "sandbox" else ""
        )
        shown = f"{prompt.strip()[:200]!r}{made_by}"
        text = f"Generated 1 image ({size}) for the prompt {shown}; it is shown to the user."
        return ToolOutcome(text=text, images=(image,), units={"image": 1})
