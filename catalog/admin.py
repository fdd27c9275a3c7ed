from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Field
from django.http import HttpRequest, HttpResponse

from catalog.dialects import dialect_choices
from catalog.models import Creator, Model, ModelFigures, Provider, Route, ToolPrice

SOURCE_OF_TRUTH = (
    "providers.yaml is the source of truth for the catalog: `manage.py catalog_load` overwrites edits made "
    "here. Change the file, run `manage.py catalog_check`, then `catalog_load`."
)


class FromYamlAdmin(admin.ModelAdmin):
    """Shows the providers.yaml note above every catalog list and form."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, {"subtitle": SOURCE_OF_TRUTH, **(extra_context or {})})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {"subtitle": SOURCE_OF_TRUTH, **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)


@admin.register(Creator)
class CreatorAdmin(FromYamlAdmin):
    list_display = ["slug", "name", "brand_color"]
    search_fields = ["slug", "name"]
    list_filter = ["brand_color"]


@admin.register(Provider)
class ProviderAdmin(FromYamlAdmin):
    list_display = [
        "slug", "name", "kind", "base_url", "credentials_env", "timeout_seconds", "max_concurrency"
    ]  # fmt: skip
    search_fields = ["slug", "name", "base_url"]
    list_filter = ["kind"]

    def formfield_for_dbfield(
        self, db_field: Field, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        if db_field.name == "kind":  # a select of the kinds registered now (the column has no choices)
            return forms.ChoiceField(choices=dialect_choices, help_text=db_field.help_text)
        if db_field.name == "base_url":
            kwargs["assume_scheme"] = "https"  # Django 6's default, chosen now (silences its warning)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class RouteInline(admin.TabularInline):
    model = Route
    extra = 0
    ordering = ["position"]
    autocomplete_fields = ["provider"]


@admin.register(Model)
class CatalogModelAdmin(FromYamlAdmin):
    list_display = [
        "slug",
        "name",
        "creator",
        "is_active",
        "context_length",
        "prompt_price",
        "completion_price",
        "position",
    ]
    list_select_related = ["creator"]
    search_fields = ["slug", "name", "hugging_face_id"]
    list_filter = ["is_active", "creator", "routes__provider"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [RouteInline]
    fieldsets = [
        (
            None,
            {"description": SOURCE_OF_TRUTH, "fields": ["slug", "name", "creator", "is_active", "position"]},
        ),
        ("Listing", {"fields": ["description", "release_date", "hugging_face_id", "features", "benchmarks"]}),
        ("Limits", {"fields": ["context_length", "max_output_tokens"]}),
        (
            "Pricing (USD per 1M tokens)",
            {"fields": ["prompt_price", "completion_price", "cached_prompt_price"]},
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]


@admin.register(Route)
class RouteAdmin(FromYamlAdmin):
    list_display = ["model", "position", "provider", "upstream_model_id"]
    list_select_related = ["model", "provider"]
    search_fields = ["model__slug", "upstream_model_id", "provider__slug"]
    list_filter = ["provider"]
    ordering = ["model__position", "model__slug", "position"]


@admin.register(ToolPrice)
class ToolPriceAdmin(FromYamlAdmin):
    list_display = ["tool", "unit", "price_usd"]
    search_fields = ["tool", "unit"]
    list_filter = ["tool"]


@admin.register(ModelFigures)
class ModelFiguresAdmin(admin.ModelAdmin):
    """Read-only: gateway.tasks.refresh_model_figures rewrites every row each minute."""

    list_display = ["model", "weekly_tokens", "requests", "success_rate", "median_ttft_ms", "computed_at"]
    list_select_related = ["model"]
    search_fields = ["model__slug"]
    ordering = ["model__position", "model__slug"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ModelFigures | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModelFigures | None = None) -> bool:
        return False
