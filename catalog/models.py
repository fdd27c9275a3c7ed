"""The public model catalog. providers.yaml is the source of truth; `catalog_load` syncs these tables."""

import os
from decimal import Decimal
from typing import Literal, overload

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import Combinable

from catalog.constants import MODEL_KINDS
from catalog.dialects import dialect_get, dialect_unknown_message

# DecimalField is generic only in the stubs, hence the quoted annotations (no subscripting at run time).
_PriceSet = Decimal | int | float | str | Combinable


@overload
def price_field(
    help_text: str, *, null: Literal[False] = False
) -> "models.DecimalField[_PriceSet, Decimal]": ...
@overload
def price_field(
    help_text: str, *, null: Literal[True]
) -> "models.DecimalField[_PriceSet | None, Decimal | None]": ...
def price_field(
    help_text: str, *, null: bool = False
) -> "models.DecimalField[_PriceSet, Decimal] | models.DecimalField[_PriceSet | None, Decimal | None]":
    """USD per million tokens: exact to the micro-dollar, never negative."""
    return models.DecimalField(
        max_digits=14,
        decimal_places=6,
        validators=[MinValueValidator(0)],
        help_text=help_text,
        null=null,
        blank=null,
    )


class Creator(models.Model):
    """Who made a model: the branding shown on catalog pages (`by DeepSeek`)."""

    slug = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    brand_color = models.CharField(
        max_length=7,
        blank=True,
        validators=[RegexValidator(r"^#[0-9A-Fa-f]{6}$", "Use a hex colour like #4D6BFE.")],
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Provider(models.Model):
    """An upstream endpoint that serves models."""

    slug = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    # No choices: the kinds are whatever the gateway registered (catalog/dialects.py), so a new dialect needs
    # no migration. The loader and clean() refuse an unregistered kind.
    kind = models.CharField(max_length=32, help_text="The upstream dialect (registered by the gateway).")
    base_url = models.URLField(max_length=500, blank=True)
    credentials_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable that holds the API key."
    )
    datacenter_locations = models.JSONField(default=list, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    # ADR 0029: requests under way to it at once (across the gateway processes that meter on one Redis), how
    # many more wait for one to end in each process, and how long; past that a request goes to its model's
    # next route, or gets provider_overloaded.
    max_concurrency = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Requests under way to this provider at once, across every gateway process that meters on "
        "the same Redis (empty: no limit).",
    )  # fmt: skip
    max_queued = models.PositiveIntegerField(
        default=0,
        help_text="With max concurrency: requests that may wait for one of its slots, in each gateway "
        "process.",
    )
    queue_timeout_seconds = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)],
        help_text="With max concurrency: the longest a request waits for a slot.",
    )  # fmt: skip

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gte=1), name="catalog_provider_timeout_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_concurrency__isnull=True) | Q(max_concurrency__gte=1),
                name="catalog_provider_max_concurrency_positive",
            ),
            models.CheckConstraint(
                condition=Q(queue_timeout_seconds__gte=1), name="catalog_provider_queue_timeout_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_queued=0) | Q(max_concurrency__isnull=False),
                name="catalog_provider_queue_needs_a_limit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def api_key(self) -> str:
        """The key its `credentials_env` names, from this process's environment ("" when unset)."""
        return os.environ.get(self.credentials_env, "") if self.credentials_env else ""

    @property
    def is_configured(self) -> bool:
        """Whether this deployment can call it: its key is set, or its kind needs none (a local server)."""
        dialect = dialect_get(self.kind)
        return bool(self.api_key) or (dialect is not None and not dialect.needs_credentials)

    def clean(self) -> None:
        # What a kind requires depends on its registered dialect, so no database constraint can say it.
        dialect = dialect_get(self.kind)
        if dialect is None:
            raise ValidationError({"kind": dialect_unknown_message(self.kind).capitalize() + "."})
        if dialect.needs_base_url and not self.base_url:
            raise ValidationError({"base_url": f"Required for kind {self.kind!r}."})
        if dialect.needs_credentials and not self.credentials_env:
            raise ValidationError({"credentials_env": f"Required for kind {self.kind!r}."})
        if self.max_queued and self.max_concurrency is None:  # the loader's schema refuses it too
            raise ValidationError(
                {"max_queued": "Only with max concurrency: requests queue for the provider's slots."}
            )


class Model(models.Model):
    """A catalog model. Prices are USD per 1M tokens, i.e. micro-USD per token (see catalog.pricing)."""

    slug = models.CharField(max_length=200, unique=True, help_text="creator/model-name")
    name = models.CharField(max_length=200)
    creator = models.ForeignKey(Creator, on_delete=models.PROTECT, related_name="models")
    description = models.TextField(blank=True)
    release_date = models.DateField(null=True, blank=True)
    kind = models.CharField(
        max_length=16,
        choices=[(kind, kind.capitalize()) for kind in MODEL_KINDS],
        default="chat",
        help_text="chat: the ingress formats; embedding: POST /api/v1/embeddings.",
    )
    context_length = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    max_output_tokens = models.PositiveIntegerField(help_text="At least 1 for chat; 0 for embeddings.")
    dimensions = models.PositiveIntegerField(
        null=True, blank=True, help_text="An embedding model's vector size (empty for chat models)."
    )
    prompt_price = price_field("USD per 1M uncached prompt tokens")
    completion_price = price_field("USD per 1M completion tokens")
    cached_prompt_price = price_field("USD per 1M cached prompt tokens; empty = prompt price", null=True)
    features = models.JSONField(default=list, blank=True)
    hugging_face_id = models.CharField(max_length=200, blank=True)
    benchmarks = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    position = models.PositiveIntegerField(
        default=0, help_text="Catalog order (the order in providers.yaml)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_output_tokens__lte=F("context_length")),
                name="catalog_model_output_within_context",
            ),
            models.CheckConstraint(
                condition=Q(prompt_price__gte=0)
                & Q(completion_price__gte=0)
                & (Q(cached_prompt_price__isnull=True) | Q(cached_prompt_price__gte=0)),
                name="catalog_model_prices_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        super().clean()
        if self.kind == "embedding":
            if not self.dimensions:
                raise ValidationError({"dimensions": "Required for an embedding model."})
            if self.max_output_tokens or self.features:
                raise ValidationError("An embedding model has no output tokens and no features.")
        elif self.max_output_tokens < 1:
            raise ValidationError({"max_output_tokens": "A chat model answers at least one token."})
        elif self.dimensions is not None:
            raise ValidationError({"dimensions": "Only embedding models have dimensions."})

    @property
    def is_available(self) -> bool:
        """Whether this deployment can serve it: at least one of its routes' providers is configured."""
        return any(route.provider.is_configured for route in self.routes.all())


class Route(models.Model):
    """One way to serve a model; the gateway tries a model's routes in `position` order."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="routes")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="routes")
    upstream_model_id = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(default=0)
    options = models.JSONField(default=dict, blank=True, help_text="Adapter-specific settings.")

    class Meta:
        ordering = ["model", "position"]
        constraints = [
            models.UniqueConstraint(fields=["model", "position"], name="catalog_route_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} #{self.position} → {self.provider.slug}:{self.upstream_model_id}"


class ModelFigures(models.Model):
    """A model's live figures, as the gateway last computed them from its generation records.

    The catalog only reads this snapshot; a periodic gateway task (gateway.tasks.refresh_model_figures)
    writes it through catalog.services.model_figures_store, so the catalog never imports the gateway.
    """

    model = models.OneToOneField(Model, on_delete=models.CASCADE, primary_key=True, related_name="figures")
    weekly_tokens = models.PositiveBigIntegerField(default=0, help_text="Completed tokens, last 7 days.")
    daily_tokens = models.JSONField(
        default=list, blank=True, help_text='[{"date": "YYYY-MM-DD", "tokens": n}], oldest first.'
    )
    requests = models.PositiveIntegerField(default=0, help_text="Finished requests, last 24 hours.")
    success_rate = models.FloatField(null=True, blank=True)
    median_ttft_ms = models.FloatField(null=True, blank=True)
    median_output_tokens_per_second = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "model figures"

    def __str__(self) -> str:
        return f"figures of {self.model} at {self.computed_at:%Y-%m-%d %H:%M}"


class ToolPrice(models.Model):
    """What one unit of a server tool costs (providers.yaml `server_tools:`, ADR 0013), in USD."""

    tool = models.CharField(max_length=40)
    unit = models.CharField(max_length=20)
    price_usd = models.DecimalField(max_digits=14, decimal_places=9)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tool", "unit"], name="toolprice_one_per_tool_unit"),
            models.CheckConstraint(condition=models.Q(price_usd__gte=0), name="toolprice_not_negative"),
        ]
        ordering = ["tool", "unit"]

    def __str__(self) -> str:
        return f"{self.tool} per {self.unit}: ${self.price_usd}"
