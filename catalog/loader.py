"""Read providers.yaml (`catalog_parse`) and sync it into the database (`catalog_load`)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction
from django.db.models import Model as DjangoModel

from catalog.fields import CatalogError
from catalog.models import Creator, Model, Provider, Route, ToolPrice
from catalog.schema import Catalog, CreatorSpec, ModelSpec, ProviderSpec, catalog_from_data


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Leave dates as strings so schema.read_date reports a bad one (PyYAML would raise a bare ValueError).
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def catalog_parse(path: str | Path) -> Catalog:
    """Read and validate the file; touches no database. Raises CatalogError."""
    path = Path(path)
    source = _display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{source}: cannot read the file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise CatalogError(f"{source}: {where}invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: invalid YAML: {exc}") from None
    return catalog_from_data(data, source=source)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class LoadResult:
    source: str
    creators: Counts = field(default_factory=Counts)
    providers: Counts = field(default_factory=Counts)
    models: Counts = field(default_factory=Counts)
    deactivated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"Loaded {self.source}: models {self.models}, {len(self.deactivated)} deactivated; "
            f"providers {self.providers}; creators {self.creators}"
        )


def catalog_load(path: str | Path) -> LoadResult:
    """Validate the file, then upsert everything in one transaction. Idempotent; never deletes a model."""
    catalog = catalog_parse(path)
    result = LoadResult(source=catalog.source)
    with transaction.atomic():
        creators = {c.slug: c for c in Creator.objects.all()}
        for creator_spec in catalog.creators:
            creator, outcome = _upsert(
                Creator,
                creators.get(creator_spec.slug),
                slug=creator_spec.slug,
                **_creator_values(creator_spec),
            )
            creators[creator_spec.slug] = creator
            result.creators.add(outcome)
        providers = {p.slug: p for p in Provider.objects.all()}
        for provider_spec in catalog.providers:
            provider, outcome = _upsert(
                Provider,
                providers.get(provider_spec.slug),
                slug=provider_spec.slug,
                **_provider_values(provider_spec),
            )
            providers[provider_spec.slug] = provider
            result.providers.add(outcome)
        models = {m.slug: m for m in Model.objects.all()}
        for position, spec in enumerate(catalog.models):
            values = _model_values(spec, creator=creators[spec.creator], position=position)
            model, outcome = _upsert(Model, models.get(spec.slug), slug=spec.slug, **values)
            routes_changed = _sync_routes(model, spec, providers)
            result.models.add("updated" if outcome == "unchanged" and routes_changed else outcome)
        stale = Model.objects.filter(is_active=True).exclude(slug__in=[m.slug for m in catalog.models])
        result.deactivated = sorted(stale.values_list("slug", flat=True))
        stale.update(is_active=False)
        _sync_tool_prices(catalog)
    return result


def _sync_tool_prices(catalog: Catalog) -> None:
    """The file's tool prices, exactly: a unit it no longer prices is dropped (and so costs nothing)."""
    for spec in catalog.tool_prices:
        ToolPrice.objects.update_or_create(tool=spec.tool, unit=spec.unit, defaults={"price_usd": spec.price})
    priced = {(spec.tool, spec.unit) for spec in catalog.tool_prices}
    for price in ToolPrice.objects.all():
        if (price.tool, price.unit) not in priced:
            price.delete()


def _upsert(cls: type[DjangoModel], obj: DjangoModel | None, **values: Any) -> tuple[Any, str]:
    if obj is None:
        return cls._default_manager.create(**values), "created"
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if not changed:
        return obj, "unchanged"
    for name in changed:
        setattr(obj, name, values[name])
    obj.save()
    return obj, "updated"


def _creator_values(spec: CreatorSpec) -> dict[str, Any]:
    return {"name": spec.name, "brand_color": spec.brand_color}


def _provider_values(spec: ProviderSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "base_url": spec.base_url,
        "credentials_env": spec.credentials_env,
        "datacenter_locations": list(spec.datacenter_locations),
        "timeout_seconds": spec.timeout_seconds,
        "max_concurrency": spec.max_concurrency,
        "max_queued": spec.max_queued,
        "queue_timeout_seconds": spec.queue_timeout_seconds,
    }


def _model_values(spec: ModelSpec, *, creator: Creator, position: int) -> dict[str, Any]:
    return {
        "name": spec.name,
        "creator_id": creator.pk,
        "description": spec.description,
        "release_date": spec.release_date,
        "kind": spec.kind,
        "dimensions": spec.dimensions,
        "context_length": spec.context_length,
        "max_output_tokens": spec.max_output_tokens,
        "prompt_price": spec.prompt_price,
        "completion_price": spec.completion_price,
        "cached_prompt_price": spec.cached_prompt_price,
        "features": list(spec.features),
        "hugging_face_id": spec.hugging_face_id,
        "benchmarks": [b.as_json() for b in spec.benchmarks],
        "is_active": True,
        "position": position,
    }


def _sync_routes(model: Model, spec: ModelSpec, providers: dict[str, Provider]) -> bool:
    """Replace the model's routes when they differ from the file; return whether they did."""
    wanted = [(r.provider, r.upstream_model_id, r.options) for r in spec.routes]
    current = list(
        model.routes.order_by("position").values_list("provider__slug", "upstream_model_id", "options")
    )
    if current == wanted:
        return False
    model.routes.all().delete()
    Route.objects.bulk_create(
        Route(model=model, provider=providers[slug], upstream_model_id=upstream, position=i, options=options)
        for i, (slug, upstream, options) in enumerate(wanted)
    )
    return True
