"""What every upstream adapter is: canonical request in, canonical events out, failures as UpstreamError.

Contract (the router in gateway/routing.py relies on it):
- `stream()` is an async generator of canonical events for one attempt on one route. It always asks the
  upstream to stream (a non-streamed answer is the fold of the events), and ends with a `Finish` and a
  `Usage` (an adapter whose upstream omits usage must compute it, e.g. by counting tokens).
- Any failure raises `UpstreamError` with the taxonomy code: before the first event the router tries the
  model's next route (when `retryable`); after it, the error goes into the client's stream.
- HTTP goes through the `UpstreamClient` it is given (one pooled client per process).
- `usage_when_cancelled()` may count, after the client left mid-answer, what the attempt cost: the prompt
  and the output it had generated (its text, in order). None keeps the gateway's estimate (design §4).
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest, Event, Usage
from gateway.upstreams.http1 import UpstreamClient

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


# What the client reads of a provider-side failure: a fixed sentence. Which provider failed, how, and the
# library's words are the operators' business: they go to the log and the generation record (`detail`).
_PROVIDER_SIDE_MESSAGES = {
    ErrorCode.PROVIDER_AUTH: "The model's provider refused this gateway's credentials.",
    ErrorCode.PROVIDER_RATE_LIMIT: "The model's provider is rate-limiting requests; try again shortly.",
    ErrorCode.PROVIDER_OVERLOADED: "The model's provider is overloaded; try again shortly.",
    ErrorCode.PROVIDER_TIMEOUT: "The model's provider did not answer in time.",
    ErrorCode.PROVIDER_UNAVAILABLE: "The model's provider failed to answer.",
}
_UPSTREAM_WORDS_MAX = 500


class UpstreamError(Exception):
    """A failed attempt. `message` is what the client reads; `detail` (default: the message) is what the
    log and the generation record keep."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: str | None = None,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail if detail is not None else message
        self.status = status
        self.param = param  # the request field at fault, when the adapter refuses one (nothing was sent)
        self.retry_after = retry_after  # the upstream's Retry-After, passed on with a rate limit

    def __str__(self) -> str:
        return self.detail

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES

    @classmethod
    def from_upstream(
        cls,
        code: ErrorCode,
        upstream_words: str,
        *,
        detail: str,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> "UpstreamError":
        """An upstream's refusal: a request the provider found fault with keeps the provider's own words
        (they tell the client what to fix); a provider-side failure reads as a fixed sentence."""
        message = _PROVIDER_SIDE_MESSAGES.get(code)
        if message is None:
            words = " ".join(upstream_words.split())[:_UPSTREAM_WORDS_MAX] or f"HTTP {status}"
            message = f"The model's provider refused the request: {words}"
        return cls(code, message, status=status, retry_after=retry_after, detail=detail)

    @classmethod
    def provider_side(cls, code: ErrorCode, detail: str) -> "UpstreamError":
        """A failure of the provider or the connection (timeouts, resets, malformed streams)."""
        return cls(code, _PROVIDER_SIDE_MESSAGES[code], detail=detail)


@dataclass(frozen=True, slots=True)
class Embedded:
    """An upstream's embeddings: one vector per input, in order, and its own count of the input tokens."""

    vectors: list[list[float]]
    prompt_tokens: int | None  # None: the upstream did not say (the gateway's estimate is billed)


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    slug: str
    kind: str
    base_url: str
    api_key: str  # read from the provider's credentials_env; "" when unset
    timeout_seconds: float
    configured: bool = True  # its key is set, or its kind needs none (catalog.models.Provider.is_configured)
    # Requests under way to it at most (None: no limit), across the processes that meter on one Redis, and
    # each process's queue for them (gateway/provider_slots.py, ADR 0029).
    max_concurrency: int | None = None
    max_queued: int = 0
    queue_timeout_seconds: float = 10.0


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
    # Whether the upstream reads PDF file parts itself; if not, the `pdf` tool turns them into text.
    reads_documents: ClassVar[bool] = False
    # Whether the upstream has a legacy text completions endpoint (a raw prompt, no chat template).
    completes_text: ClassVar[bool] = False
    # Whether it has an embeddings endpoint (`embed`), for the catalog's embedding models.
    serves_embeddings: ClassVar[bool] = False
    shortens_embeddings: ClassVar[bool] = False  # and takes `dimensions` (shorter vectors)

    @abstractmethod
    def stream(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        """Yield the canonical events of one upstream attempt; raise UpstreamError on failure."""

    async def usage_when_cancelled(
        self,
        request: CanonicalRequest,
        route: RouteInfo,
        client: UpstreamClient,
        generated: Sequence[str],
    ) -> Usage | None:
        """The exact usage of an attempt the client left before its end, when the upstream can tell it
        (`generated`: the output text and tool arguments it had sent, in order). None: not knowable here."""
        return None

    async def count_prompt_tokens(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> int | None:
        """The request's prompt tokens as the upstream counts them, where it can (count_tokens). None: it
        cannot, and the gateway's estimate stands. Raises UpstreamError, HttpError or TimeoutError."""
        return None

    async def tokenize(self, text: str, route: RouteInfo, client: UpstreamClient) -> list[int] | None:
        """The upstream tokenizer's ids for `text`, where it exposes them (None: it does not)."""
        return None

    async def detokenize(self, tokens: list[int], route: RouteInfo, client: UpstreamClient) -> str | None:
        """The text of these token ids, where the upstream exposes its tokenizer (None: it does not)."""
        return None

    async def count_text_tokens(self, text: str, route: RouteInfo, client: UpstreamClient) -> int | None:
        """How many tokens the upstream's tokenizer makes of `text` (None: it cannot say)."""
        return None

    async def embed(
        self,
        texts: Sequence[str],
        route: RouteInfo,
        client: UpstreamClient,
        *,
        dimensions: int | None,
    ) -> Embedded:
        """One vector per text, where `serves_embeddings` (`dimensions`: the client's shorter size, if it
        asked). Raises UpstreamError, naming `dimensions` when the upstream cannot shorten vectors."""
        message = f"model: {self.kind} upstreams have no embeddings"
        raise UpstreamError(ErrorCode.INVALID_REQUEST, message, param="model")


def error_for_status(status: int) -> ErrorCode:
    """design §3: an upstream HTTP failure by its status alone. Each dialect refines it with its own
    structured error fields first (and, last, a few of its own phrases): never by words alone."""
    if status in (401, 403):
        return ErrorCode.PROVIDER_AUTH
    if status == 402:  # the provider's "payment required" is not the client's insufficient_credits
        return ErrorCode.INVALID_REQUEST
    if status == 429:
        return ErrorCode.PROVIDER_RATE_LIMIT
    if status == 529:
        return ErrorCode.PROVIDER_OVERLOADED
    if status in (408, 504):
        return ErrorCode.PROVIDER_TIMEOUT
    if status == 413:
        return ErrorCode.PAYLOAD_TOO_LARGE
    if status == 404 or status >= 500:  # 404: the route's model or endpoint is gone — the next route may do
        return ErrorCode.PROVIDER_UNAVAILABLE
    return ErrorCode.INVALID_REQUEST
