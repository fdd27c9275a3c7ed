from django.contrib import admin
from django.http import HttpRequest

from gateway.models import Generation


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "request_id",
        "workspace",
        "model",
        "provider",
        "ingress_format",
        "source",
        "status",
        "tokens_prompt",
        "tokens_completion",
        "cost_micro_usd",
        "latency_ms",
    )
    list_filter = ("status", "ingress_format", "source", "streamed", "provider", "created_at")
    search_fields = (
        "request_id",
        "model",
        "workspace__slug",
        "workspace__name",
        "api_key__prefix",
        "end_user",
    )
    date_hierarchy = "created_at"
    list_select_related = ("workspace", "api_key")
    readonly_fields = [field.name for field in Generation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # written by the gateway only

    def has_change_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        return False
