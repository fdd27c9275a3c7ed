"""The validated catalog: frozen dataclasses built by catalog.schema from providers.yaml."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class CreatorSpec:
    slug: str
    name: str
    brand_color: str = ""


@dataclass(frozen=True)
class ProviderSpec:
    slug: str
    name: str
    kind: str
    base_url: str = ""
    credentials_env: str = ""
    datacenter_locations: tuple[str, ...] = ()
    timeout_seconds: int = 60
    # Requests under way to it from one gateway process at most (None: no limit), how many more may wait
    # for one to end, and how long (ADR 0029).
    max_concurrency: int | None = None
    max_queued: int = 0
    queue_timeout_seconds: int = 10


@dataclass(frozen=True)
class BenchmarkSpec:
    label: str
    score: int | float
    source_url: str
    tier: str
    unit: str = "%"
    mode: str = ""

    def as_json(self) -> dict[str, Any]:
        data = {"label": self.label, "score": self.score, "unit": self.unit}
        if self.mode:
            data["mode"] = self.mode
        return {**data, "source_url": self.source_url, "tier": self.tier}


@dataclass(frozen=True)
class RouteSpec:
    provider: str
    upstream_model_id: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    slug: str
    name: str
    description: str
    context_length: int
    max_output_tokens: int
    prompt_price: Decimal
    completion_price: Decimal
    routes: tuple[RouteSpec, ...]
    cached_prompt_price: Decimal | None = None
    release_date: datetime.date | None = None
    features: tuple[str, ...] = ()
    hugging_face_id: str = ""
    benchmarks: tuple[BenchmarkSpec, ...] = ()
    kind: str = "chat"  # or "embedding" (catalog.constants.MODEL_KINDS)
    dimensions: int | None = None  # an embedding model's vector size

    @property
    def creator(self) -> str:
        return self.slug.split("/", 1)[0]


@dataclass(frozen=True)
class ToolPriceSpec:
    """What one unit of a server tool costs (USD), e.g. web_search per call, per result."""

    tool: str
    unit: str
    price: Decimal


@dataclass(frozen=True)
class Catalog:
    source: str
    creators: tuple[CreatorSpec, ...]
    providers: tuple[ProviderSpec, ...]
    models: tuple[ModelSpec, ...]
    tool_prices: tuple[ToolPriceSpec, ...] = ()
