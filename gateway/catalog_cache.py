"""The catalog as the hot path needs it: frozen snapshots, reloaded from the database every few seconds.
While PostgreSQL does not answer, the last snapshot serves (nobody can change the catalog meanwhile)."""

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import DatabaseError

from catalog.selectors import models_active, tool_prices
from core.encoding import compact_json
from gateway.load_ahead import load_ahead
from gateway.outage import postgres_attempt
from gateway.upstreams.base import ProviderInfo, RouteInfo

REFRESH_SECONDS = 10.0
# The catalog in use is loaded again in the background this long before it goes stale (gateway/load_ahead.py),
# so requests never find it stale and go to worker threads to wait for the load.
REFRESH_AHEAD_SECONDS = 1.0
OUTAGE_RETRY_SECONDS = 2.0  # PostgreSQL down: the last snapshot serves this long before a load is tried again


@dataclass(frozen=True, slots=True)
class ModelInfo:
    slug: str
    context_length: int
    max_output_tokens: int
    prompt_price: Decimal
    completion_price: Decimal
    cached_prompt_price: Decimal | None
    features: frozenset[str]
    routes: tuple[RouteInfo, ...]
    kind: str = "chat"  # or "embedding": served by POST /api/v1/embeddings only
    dimensions: int | None = None  # an embedding model's vector size
    # What a settlement keeps of the model (`from_settlement` reads it back), made once a catalog load.
    settlement_json: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settlement_json", compact_json(self._settlement()))

    def _settlement(self) -> dict[str, Any]:
        """What billing needs of the model: its slug, limits and prices (exact decimals, as strings): a later
        settlement bills at the prices the request was admitted with, whatever the catalog says by then."""
        cached = self.cached_prompt_price
        return {
            "slug": self.slug,
            "context_length": self.context_length,
            "max_output_tokens": self.max_output_tokens,
            "prompt_price": str(self.prompt_price),
            "completion_price": str(self.completion_price),
            "cached_prompt_price": None if cached is None else str(cached),
        }

    @classmethod
    def from_settlement(cls, data: dict[str, Any]) -> "ModelInfo":
        """The model of a settlement read back from its JSON (`settlement_json`): for billing, not routing."""
        cached = data["cached_prompt_price"]
        return cls(
            slug=data["slug"],
            context_length=data["context_length"],
            max_output_tokens=data["max_output_tokens"],
            prompt_price=Decimal(data["prompt_price"]),
            completion_price=Decimal(data["completion_price"]),
            cached_prompt_price=None if cached is None else Decimal(cached),
            features=frozenset(),  # routing only: a settlement never goes upstream
            routes=(),
        )


def _load() -> dict[str, ModelInfo]:
    snapshot = {}
    for model in models_active():
        routes = tuple(
            RouteInfo(
                provider=ProviderInfo(
                    slug=route.provider.slug,
                    kind=route.provider.kind,
                    base_url=route.provider.base_url.rstrip("/"),
                    api_key=route.provider.api_key,
                    timeout_seconds=float(route.provider.timeout_seconds),
                    configured=route.provider.is_configured,
                    max_concurrency=route.provider.max_concurrency,
                    max_queued=route.provider.max_queued,
                    queue_timeout_seconds=float(route.provider.queue_timeout_seconds),
                ),
                upstream_model_id=route.upstream_model_id,
                options=dict(route.options),
            )
            for route in sorted(model.routes.all(), key=lambda r: r.position)
        )
        snapshot[model.slug] = ModelInfo(
            slug=model.slug,
            context_length=model.context_length,
            max_output_tokens=model.max_output_tokens,
            prompt_price=model.prompt_price,
            completion_price=model.completion_price,
            cached_prompt_price=model.cached_prompt_price,
            features=frozenset(model.features),
            routes=routes,
            kind=model.kind,
            dimensions=model.dimensions,
        )
    return snapshot


class CatalogCache:
    """Process-wide; `get` is called from a worker thread (it may hit the database)."""

    def __init__(self) -> None:
        self._models: dict[str, ModelInfo] = {}
        self._tool_prices: dict[tuple[str, str], Decimal] = {}
        self._loaded_at = float("-inf")
        self._loaded = False  # a snapshot is in hand (an empty catalog is one too)
        self._loading = threading.Lock()
        self._invalidations = 0

    def get(self, slug: str) -> ModelInfo | None:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            self._reload()
        return self._models.get(slug)

    def _reload(self, *, ahead: bool = False) -> None:
        """One thread loads; the others go on with the snapshot in hand (or, with none yet, wait for it)."""
        if not self._loading.acquire(blocking=not self._loaded):
            return
        try:
            stale_after = REFRESH_SECONDS - REFRESH_AHEAD_SECONDS if ahead else REFRESH_SECONDS
            if time.monotonic() - self._loaded_at <= stale_after:
                return  # loaded while this one waited
            invalidations = self._invalidations
            try:
                with postgres_attempt():
                    models, prices = _load(), tool_prices()
            except DatabaseError:
                if not self._loaded:
                    raise
                self._loaded_at = time.monotonic() - REFRESH_SECONDS + OUTAGE_RETRY_SECONDS
                return
            self._models, self._tool_prices, self._loaded = models, prices, True
            if invalidations == self._invalidations:  # else read before the change: the next get loads again
                self._loaded_at = time.monotonic()
        finally:
            self._loading.release()

    def tool_prices(self) -> dict[tuple[str, str], Decimal]:
        """Server tool prices (USD by tool and unit) as loaded with the models `get` last returned."""
        return self._tool_prices

    def is_fresh(self) -> bool:
        """`get` answers from memory; a snapshot about to go stale is loaded again in the background."""
        age = time.monotonic() - self._loaded_at
        if age > REFRESH_SECONDS - REFRESH_AHEAD_SECONDS:
            if age > REFRESH_SECONDS:
                return False
            load_ahead("catalog", self.reload_ahead)
        return True

    def reload_ahead(self) -> None:
        self._reload(ahead=True)

    def peek(self, slug: str) -> ModelInfo | None:
        return self._models.get(slug)

    def invalidate(self) -> None:
        """The catalog changed (tests): every `get` waits for a load that began after this one."""
        self._invalidations += 1
        self._loaded_at, self._loaded = float("-inf"), False


catalog_cache = CatalogCache()
