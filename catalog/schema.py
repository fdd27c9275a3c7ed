"""The providers.yaml schema: validates parsed YAML into frozen dataclasses, or raises CatalogError.

Field-by-field documentation lives in docs/catalog.md.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from catalog.constants import BENCHMARK_TIERS, BENCHMARK_UNITS, FEATURES, MODEL_KINDS
from catalog.dialects import dialect_get, dialect_unknown_message
from catalog.fields import (
    CatalogError,
    Where,
    check_unique_slugs,
    read_choice,
    read_date,
    read_decimal,
    read_list,
    read_mapping,
    read_non_negative_int,
    read_number,
    read_positive_int,
    read_str,
    read_str_list,
    read_url,
    show,
)
from catalog.specs import (
    BenchmarkSpec,
    Catalog,
    CreatorSpec,
    ModelSpec,
    ProviderSpec,
    RouteSpec,
    ToolPriceSpec,
)

__all__ = [
    "BenchmarkSpec",
    "Catalog",
    "CatalogError",
    "CreatorSpec",
    "ModelSpec",
    "ProviderSpec",
    "RouteSpec",
]

SLUG = r"[a-z0-9][a-z0-9._-]*"
SLUG_HINT = "a lowercase slug (a-z, 0-9, '.', '_', '-')"
MODEL_SLUG = rf"{SLUG}/{SLUG}"
MODEL_SLUG_HINT = "'creator/model-name' in lowercase (a-z, 0-9, '.', '_', '-')"
HEX_COLOR = r"#[0-9A-Fa-f]{6}"
ENV_VAR = r"[A-Z_][A-Z0-9_]*"
COUNTRY = r"[A-Z]{2}"
PRICE_STEP = Decimal("0.000001")
PRICE_LIMIT = Decimal(10**8)
# The units each server tool is billed by (ADR 0013); a price is USD per unit.
TOOL_UNITS = {
    "web_search": ("call", "result"),
    "web_fetch": ("call",),
    "pdf": ("page",),
    "datetime": ("call",),
    "image": ("image",),
}
TOOL_PRICE_STEP = Decimal("0.000000001")
TOOL_PRICE_LIMIT = Decimal(10**5)


def catalog_from_data(data: Any, *, source: str) -> Catalog:
    """Validate the parsed YAML document; `source` is the file name used in error messages."""
    root = Where(source)
    if data is None:
        root.fail("the file is empty (expected keys creators, providers, models)")
    doc = read_mapping(data, root, required=("creators", "providers", "models"), optional=("server_tools",))
    creators = tuple(_creator(v, root.child("creators").child(i)) for i, v in _items(doc, root, "creators"))
    providers = tuple(
        _provider(v, root.child("providers").child(i)) for i, v in _items(doc, root, "providers")
    )
    check_unique_slugs(creators, root.child("creators"))
    check_unique_slugs(providers, root.child("providers"))
    known_creators = {c.slug for c in creators}
    known_providers = {p.slug for p in providers}
    models = tuple(
        _model(v, root.child("models").child(i), known_creators, known_providers)
        for i, v in _items(doc, root, "models")
    )
    check_unique_slugs(models, root.child("models"))
    tool_prices = _tool_prices(doc.get("server_tools", {}), root.child("server_tools"))
    return Catalog(
        source=source, creators=creators, providers=providers, models=models, tool_prices=tool_prices
    )


def _tool_prices(value: Any, at: Where) -> tuple[ToolPriceSpec, ...]:
    """`server_tools: {web_search: {call: "0.004", result: "0"}, …}`: USD per unit of each tool."""
    tools = read_mapping(value, at, required=(), optional=tuple(TOOL_UNITS))
    prices = []
    for tool, units in tools.items():
        unit_prices = read_mapping(units, at.child(tool), required=(), optional=TOOL_UNITS[tool])
        for unit, price in unit_prices.items():
            prices.append(ToolPriceSpec(tool, unit, _tool_price(price, at.child(tool).child(unit))))
    return tuple(prices)


def _tool_price(value: Any, at: Where) -> Decimal:
    # Must fit ToolPrice's DecimalField(max_digits=14, decimal_places=9): a micro-dollar's thousandth.
    price = read_decimal(value, at)
    if price >= TOOL_PRICE_LIMIT or price != price.quantize(TOOL_PRICE_STEP):
        at.fail(f"must have at most 9 decimal places and be below {TOOL_PRICE_LIMIT}, got {show(value)}")
    return price


def _items(doc: dict[str, Any], root: Where, key: str) -> list[tuple[int, Any]]:
    return list(enumerate(read_list(doc[key], root.child(key))))


def _named(
    value: Any, at: Where, *, slug_pattern: str, slug_hint: str, **fields: Any
) -> tuple[dict[str, Any], str, Where]:
    """Read an entity's mapping and slug; later errors name it by slug (`models[x/y]`), not index."""
    if not isinstance(value, dict):
        at.fail(f"must be a mapping, got {show(value)}")
    if "slug" not in value:
        at.child("slug").fail("required field is missing")
    slug = read_str(value["slug"], at.child("slug"), pattern=slug_pattern, hint=slug_hint)
    named = Where(at.source, f"{at.path.rsplit('[', 1)[0]}[{slug}]")
    return read_mapping(value, named, **fields), slug, named


def _creator(value: Any, at: Where) -> CreatorSpec:
    raw, slug, at = _named(
        value,
        at,
        slug_pattern=SLUG,
        slug_hint=SLUG_HINT,
        required=("slug", "name"),
        optional=("brand_color",),
    )
    color = raw.get("brand_color", "")
    return CreatorSpec(
        slug=slug,
        name=read_str(raw["name"], at.child("name")),
        brand_color=read_str(
            color, at.child("brand_color"), blank=True, pattern=HEX_COLOR, hint="a hex colour like #4D6BFE"
        ),
    )


def _provider(value: Any, at: Where) -> ProviderSpec:
    raw, slug, at = _named(
        value,
        at,
        slug_pattern=SLUG,
        slug_hint=SLUG_HINT,
        required=("slug", "name", "kind"),
        optional=(
            "base_url", "credentials_env", "datacenter_locations", "timeout_seconds",
            "max_concurrency", "max_queued", "queue_timeout_seconds",
        ),
    )  # fmt: skip
    kind = read_str(raw["kind"], at.child("kind"))
    dialect = dialect_get(kind)
    if dialect is None:
        at.child("kind").fail(dialect_unknown_message(kind))
    base_url = ""
    if dialect.needs_base_url or raw.get("base_url"):
        if "base_url" not in raw:
            at.child("base_url").fail(f"required for kind {kind!r}")
        base_url = read_url(raw["base_url"], at.child("base_url"))
    credentials = read_str(
        raw.get("credentials_env", ""),
        at.child("credentials_env"),
        blank=True,
        pattern=ENV_VAR,
        hint="an environment variable name like CEREBRAS_API_KEY",
    )
    if not credentials and dialect.needs_credentials:
        at.child("credentials_env").fail(f"required for kind {kind!r}")
    return ProviderSpec(
        slug=slug,
        name=read_str(raw["name"], at.child("name")),
        kind=kind,
        base_url=base_url,
        credentials_env=credentials,
        datacenter_locations=read_str_list(
            raw.get("datacenter_locations", []),
            at.child("datacenter_locations"),
            pattern=COUNTRY,
            hint="an ISO 3166-1 alpha-2 country code like US",
        ),
        timeout_seconds=read_positive_int(raw.get("timeout_seconds", 60), at.child("timeout_seconds")),
        **_concurrency(raw, at),
    )


def _concurrency(raw: dict[str, Any], at: Where) -> dict[str, Any]:
    """A provider's `max_concurrency` and its queue (ADR 0029); the queue's fields only beside the limit."""
    if "max_concurrency" not in raw:
        for name in ("max_queued", "queue_timeout_seconds"):
            if name in raw:
                at.child(name).fail("only with max_concurrency (requests queue for a provider's slots)")
        return {}
    return {
        "max_concurrency": read_positive_int(raw["max_concurrency"], at.child("max_concurrency")),
        "max_queued": read_non_negative_int(raw.get("max_queued", 0), at.child("max_queued")),
        "queue_timeout_seconds": read_positive_int(
            raw.get("queue_timeout_seconds", 10), at.child("queue_timeout_seconds")
        ),
    }


def _model(value: Any, at: Where, creators: set[str], providers: set[str]) -> ModelSpec:
    raw, slug, at = _named(
        value,
        at,
        slug_pattern=MODEL_SLUG,
        slug_hint=MODEL_SLUG_HINT,
        required=("slug", "name", "description", "context_length", "pricing", "routes"),
        optional=(
            "kind", "dimensions", "max_output_tokens", "release_date", "features", "hugging_face_id",
            "benchmarks",
        ),
    )  # fmt: skip
    creator = slug.split("/", 1)[0]
    if creator not in creators:
        at.child("slug").fail(f"unknown creator {creator!r} (known: {', '.join(sorted(creators))})")
    kind = read_choice(raw.get("kind", "chat"), at.child("kind"), MODEL_KINDS)
    context = read_positive_int(raw["context_length"], at.child("context_length"))
    shape = _embedding_shape(raw, at) if kind == "embedding" else _chat_shape(raw, at, context)
    pricing_at = at.child("pricing")
    pricing = read_mapping(raw["pricing"], pricing_at, required=shape.prices, optional=("cached_prompt",))
    cached = pricing.get("cached_prompt")
    features = read_str_list(raw.get("features", []), at.child("features"))
    for i, feature in enumerate(features):
        read_choice(feature, at.child("features").child(i), FEATURES)
    benchmarks = [_benchmark(v, at.child("benchmarks").child(i)) for i, v in _indexed(raw, at, "benchmarks")]
    routes = [_route(v, at.child("routes").child(i), providers) for i, v in _indexed(raw, at, "routes", 1)]
    return ModelSpec(
        slug=slug,
        name=read_str(raw["name"], at.child("name")),
        description=read_str(raw["description"], at.child("description")),
        kind=kind,
        dimensions=shape.dimensions,
        context_length=context,
        max_output_tokens=shape.max_output_tokens,
        prompt_price=_price(pricing["prompt"], pricing_at.child("prompt")),
        completion_price=_price(pricing.get("completion", 0), pricing_at.child("completion")),
        cached_prompt_price=None if cached is None else _price(cached, pricing_at.child("cached_prompt")),
        release_date=read_date(raw.get("release_date"), at.child("release_date")),
        features=features,
        hugging_face_id=read_str(raw.get("hugging_face_id", ""), at.child("hugging_face_id"), blank=True),
        # The public API lists primary benchmarks first; sorting is stable, so file order holds within a tier.
        benchmarks=tuple(sorted(benchmarks, key=lambda b: BENCHMARK_TIERS.index(b.tier))),
        routes=tuple(routes),
    )


@dataclass(frozen=True)
class _Shape:
    """What a model's kind asks of its entry: the token limit, the vector size, the prices it must list."""

    max_output_tokens: int
    dimensions: int | None
    prices: tuple[str, ...]


def _chat_shape(raw: dict[str, Any], at: Where, context: int) -> _Shape:
    if "max_output_tokens" not in raw:
        at.child("max_output_tokens").fail("required field is missing")
    if "dimensions" in raw:
        at.child("dimensions").fail("only an embedding model (kind: embedding) has dimensions")
    max_output = read_positive_int(raw["max_output_tokens"], at.child("max_output_tokens"))
    if max_output > context:
        at.child("max_output_tokens").fail(f"must be <= context_length ({context}), got {max_output}")
    return _Shape(max_output, None, ("prompt", "completion"))


def _embedding_shape(raw: dict[str, Any], at: Where) -> _Shape:
    """An embedding model answers no tokens: no max_output_tokens, features or completion price."""
    for field in ("max_output_tokens", "features"):
        if field in raw:
            at.child(field).fail("an embedding model has none")
    if "completion" in (raw.get("pricing") or {}):
        at.child("pricing").child("completion").fail("an embedding model is priced by its input only")
    if "dimensions" not in raw:
        at.child("dimensions").fail("required for an embedding model (its vectors' size)")
    return _Shape(0, read_positive_int(raw["dimensions"], at.child("dimensions")), ("prompt",))


def _price(value: Any, at: Where) -> Decimal:
    # Must fit Model's DecimalField(max_digits=14, decimal_places=6) exactly: the DB never rounds a price.
    price = read_decimal(value, at)
    if price >= PRICE_LIMIT or price != price.quantize(PRICE_STEP):
        at.fail(f"must have at most 6 decimal places and be below {PRICE_LIMIT}, got {show(value)}")
    return price


def _indexed(raw: dict[str, Any], at: Where, key: str, min_items: int = 0) -> list[tuple[int, Any]]:
    return list(enumerate(read_list(raw.get(key, []), at.child(key), min_items=min_items)))


def _benchmark(value: Any, at: Where) -> BenchmarkSpec:
    raw = read_mapping(
        value, at, required=("label", "score", "source_url", "tier"), optional=("unit", "mode")
    )
    unit = read_choice(raw.get("unit", "%"), at.child("unit"), BENCHMARK_UNITS)
    score = read_number(raw["score"], at.child("score"))
    if unit == "%" and not 0 <= score <= 100:
        at.child("score").fail(f"a percentage must be between 0 and 100, got {show(score)}")
    return BenchmarkSpec(
        label=read_str(raw["label"], at.child("label")),
        score=score,
        unit=unit,
        mode=read_str(raw.get("mode", ""), at.child("mode"), blank=True),
        source_url=read_url(raw["source_url"], at.child("source_url")),
        tier=read_choice(raw["tier"], at.child("tier"), BENCHMARK_TIERS),
    )


def _route(value: Any, at: Where, providers: set[str]) -> RouteSpec:
    raw = read_mapping(value, at, required=("provider", "upstream_model_id"), optional=("options",))
    provider = read_str(raw["provider"], at.child("provider"))
    if provider not in providers:
        at.child("provider").fail(f"unknown provider {provider!r} (known: {', '.join(sorted(providers))})")
    options = {} if raw.get("options") is None else raw["options"]
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        at.child("options").fail(f"must be a mapping with string keys, got {show(options)}")
    return RouteSpec(
        provider=provider,
        upstream_model_id=read_str(raw["upstream_model_id"], at.child("upstream_model_id")),
        options=dict(options),
    )
