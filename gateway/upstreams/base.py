"""What every upstream adapter is: canonical request in, canonical events out, failures as UpstreamError.

Contract (the router in gateway/routing.py relies on it):
- `stream()` is an async generator of canonical events for one attempt on one route. It always asks the
  upstream to stream (a non-streamed answer is the fold of the events), and ends with a `Finish` and a
  `Usage` (an adapter whose upstream omits usage must compute it, e.g. by counting tokens).
- Any failure raises `UpstreamError` with the taxonomy code: before the first event the router tries the
  model's next route (when `retryable`); after it, the error goes into the client's stream.
- HTTP goes through the `aiohttp.ClientSession` it is given (one pooled session per process).
- `usage_when_cancelled()` may count, after the client left mid-answer, what the attempt cost: the prompt
  and the output it had generated (its text, in order). None keeps the gateway's estimate (design §4).
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest, Event, Usage

# Codes that mean "this provider, right now" — worth trying the next route.
RETRYABLE_CODES = frozenset(
    {
        ErrorCode.PROVIDER_UNAVAILABLE,
        ErrorCode.PROVIDER_TIMEOUT,
        ErrorCode.PROVIDER_RATE_LIMIT,
        ErrorCode.PROVIDER_OVERLOADED,
        ErrorCode.PROVIDER_AUTH,
    }
)


class UpstreamError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: str | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.param = param  # the request field at fault, when the adapter refuses one
        self.retry_after = retry_after  # the upstream's Retry-After, passed on with a rate limit

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    slug: str
    kind: str
    base_url: str
    api_key: str  # read from the provider's credentials_env; "" when unset
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class RouteInfo:
    provider: ProviderInfo
    upstream_model_id: str
    options: dict[str, Any] = field(default_factory=dict)


class UpstreamAdapter(ABC):
    kind: ClassVar[str]  # providers.yaml's `kind`; by convention, also the module's name
    label: ClassVar[str] = ""  # for people (the admin's select); empty: the kind
    # What a providers.yaml entry of this kind must carry (the catalog learns it through catalog.dialects).
    needs_base_url: ClassVar[bool] = True
    needs_credentials: ClassVar[bool] = True  # false: credentials_env is optional

    @abstractmethod
    def stream(
        self, request: CanonicalRequest, route: RouteInfo, session: aiohttp.ClientSession
    ) -> AsyncGenerator[Event, None]:
        """Yield the canonical events of one upstream attempt; raise UpstreamError on failure."""

    async def usage_when_cancelled(
        self,
        request: CanonicalRequest,
        route: RouteInfo,
        session: aiohttp.ClientSession,
        generated: Sequence[str],
    ) -> Usage | None:
        """The exact usage of an attempt the client left before its end, when the upstream can tell it
        (`generated`: the output text and tool arguments it had sent, in order). None: not knowable here."""
        return None


_CONTENT_FILTER_HINTS = ("content_filter", "content filter", "safety")
_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "context window",
    "too many tokens",
    "prompt is too long",
)


def error_for_status(status: int, body: str) -> ErrorCode:
    """design §3's mapping of an upstream HTTP failure onto the taxonomy."""
    lowered = body.lower()
    if status in (401, 403):
        return ErrorCode.PROVIDER_AUTH
    if status == 429:
        return ErrorCode.PROVIDER_RATE_LIMIT
    if status == 529 or "overloaded" in lowered:
        return ErrorCode.PROVIDER_OVERLOADED
    if status in (408, 504):
        return ErrorCode.PROVIDER_TIMEOUT
    if status >= 500:
        return ErrorCode.PROVIDER_UNAVAILABLE
    if status == 413 or any(hint in lowered for hint in _CONTEXT_HINTS):
        return ErrorCode.CONTEXT_LENGTH_EXCEEDED
    if any(hint in lowered for hint in _CONTENT_FILTER_HINTS):
        return ErrorCode.CONTENT_FILTER
    return ErrorCode.INVALID_REQUEST
