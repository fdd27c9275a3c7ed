"""The model list's search, filters and sort orders (`/models/?q=…&feature=…&sort=…`).

One typed query, parsed from GET parameters (a value that does not parse is ignored, so a hand-edited link
never fails), applied to the active models in Python: the catalog is tens of models, and the weekly volumes
that one sort order needs come from the live-figure snapshot (catalog.selectors), not from a column.
"""

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from catalog.constants import FEATURES
from catalog.models import Model

SORTS: dict[str, str] = {
    "catalog": "Catalog order",
    "newest": "Newest",
    "price": "Price: low to high",
    "context": "Context length",
    "volume": "Weekly tokens",
}
# (minimum context length, label) offered by the filter; any positive integer is accepted in a link.
CONTEXT_CHOICES: tuple[tuple[int, str], ...] = (
    (8_192, "8K or more"),
    (32_768, "32K or more"),
    (131_072, "128K or more"),
    (262_144, "256K or more"),
)
FEATURE_LABELS: dict[str, str] = {
    "tools": "Tool calling",
    "vision": "Vision",
    "json_mode": "JSON mode",
    "reasoning": "Reasoning",
    "streaming": "Streaming",
    "prompt_caching": "Prompt caching",
}


@dataclass(frozen=True, slots=True)
class ModelQuery:
    search: str = ""
    feature: str = ""
    creator: str = ""
    max_prompt_price: Decimal | None = None  # USD per 1M prompt tokens, inclusive
    min_context: int | None = None
    sort: str = "catalog"

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "ModelQuery":
        feature = params.get("feature", "").strip()
        sort = params.get("sort", "").strip()
        return cls(
            search=params.get("q", "").strip()[:200],
            feature=feature if feature in FEATURES else "",
            creator=params.get("creator", "").strip().lower(),
            max_prompt_price=_decimal(params.get("max_price", "")),
            min_context=_positive_int(params.get("min_context", "")),
            sort=sort if sort in SORTS else "catalog",
        )

    @property
    def is_filtered(self) -> bool:
        """Whether anything narrows the list (the sort order does not)."""
        return bool(self.search or self.feature or self.creator) or (
            self.max_prompt_price is not None or self.min_context is not None
        )

    def matches(self, model: Model) -> bool:
        if self.search:
            needle = self.search.casefold()
            if not any(needle in text.casefold() for text in (model.name, model.slug, model.description)):
                return False
        if self.feature and self.feature not in model.features:
            return False
        if self.creator and model.creator.slug != self.creator:
            return False
        if self.max_prompt_price is not None and model.prompt_price > self.max_prompt_price:
            return False
        return self.min_context is None or model.context_length >= self.min_context


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _positive_int(text: str) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value > 0 else None


def _listed(model: Model) -> datetime.date:
    """What "newest" sorts on: the release date, else the day the catalog first listed the model (the same
    rule as the public API's `created`)."""
    return model.release_date or model.created_at.date()


def browse_models(
    models: Iterable[Model], query: ModelQuery, *, weekly_volumes: Mapping[str, int]
) -> list[Model]:
    """The models that match `query`, in its sort order. `models` come in catalog order, which breaks ties."""
    shown = [model for model in models if query.matches(model)]
    if query.sort == "newest":
        shown.sort(key=_listed, reverse=True)
    elif query.sort == "price":
        shown.sort(key=lambda model: (model.prompt_price, model.completion_price))
    elif query.sort == "context":
        shown.sort(key=lambda model: model.context_length, reverse=True)
    elif query.sort == "volume":
        shown.sort(key=lambda model: weekly_volumes.get(model.slug, 0), reverse=True)
    return shown
