"""What an ingress format provides to the gateway's one request pipeline (gateway/pipeline.py).

Each format (chat_completions, responses, anthropic_messages) parses its request into the canonical model,
renders the canonical event stream as its own SSE protocol, folds it into its own response object, and
wraps errors in its own envelope. Everything else (auth, metering, routing, disconnects) is shared.
"""

from typing import Any, Protocol

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest, Event, Usage
from gateway.fold import Folded


def provider_metadata(usage: Usage) -> dict[str, Any]:
    """What every format's usage object carries beyond its spec's: the provider's own report of the answer
    (timings, metrics), under `provider_metadata` and the dialect's name, when the provider sent one."""
    return {"provider_metadata": usage.provider_metadata} if usage.provider_metadata else {}


class StreamRenderer(Protocol):
    """One streamed response: canonical events in, SSE frames (bytes, each ending in a blank line) out."""

    def start(self) -> list[bytes]:
        """The frames before the first upstream event."""

    def render(self, event: Event) -> list[bytes]:
        """The frames for one event (often none)."""

    def finish(self, usage: Usage, cost_usd: float) -> list[bytes]:
        """The frames that end a completed stream: usage, then the format's terminator."""

    def error(self, code: ErrorCode, message: str) -> list[bytes]:
        """The frames that end a stream an upstream error broke after its first byte."""


class IngressFormat(Protocol):
    FORMAT: str  # the Generation.ingress_format value
    PATH: str  # where the gateway serves it (POST)
    LABEL: str  # its name for people (admin, dashboard)
    PROMPT_FIELD: str  # the body field that holds the conversation, named by errors about the prompt

    def parse_request(self, body: dict[str, Any]) -> CanonicalRequest:
        """Validate and convert; raises ApiError(invalid_request) naming the field."""

    def response_object(
        self, *, request_id: str, model: str, created: int, folded: Folded, usage: Usage, cost_usd: float
    ) -> dict[str, Any]:
        """The non-streamed answer."""

    def stream_renderer(self, *, request_id: str, model: str, tool_events: bool = False) -> StreamRenderer:
        """`tool_events`: the client asked for a start and a result event per server tool call."""

    def error_body(
        self, code: ErrorCode, message: str, request_id: str, param: str | None = None
    ) -> dict[str, Any]:
        """The format's error envelope, with the taxonomy code."""
