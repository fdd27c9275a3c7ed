"""One record per gateway request: what was asked, who answered, what it cost (design §3, metering)."""

from django.db import models
from django.utils import timezone


class Source(models.TextChoices):
    API = "api", "API"
    PLAYGROUND = "playground", "Docs playground"
    CHAT = "chat", "Dashboard chat"


class GenerationStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled by the client"


class Generation(models.Model):
    # Each index is written for every request the gateway serves (PostgreSQL's CPU and WAL a request:
    # docs/scaling.md), so there is none that another covers: the workspace's and the model's lookups are
    # the composite indexes' first columns, and the request id's uniqueness is a constraint with no
    # pattern-ops copy (the admin searches with ILIKE '%…%', which no B-tree serves).
    request_id = models.CharField(max_length=64)
    workspace = models.ForeignKey(
        "console.Workspace", on_delete=models.CASCADE, related_name="generations", db_index=False
    )
    api_key = models.ForeignKey(
        "console.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="generations"
    )
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.API)
    # One of gateway/ingress/registry.py's format names; no `choices`, so a new format needs no migration.
    ingress_format = models.CharField(max_length=20)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    upstream_model_id = models.CharField(max_length=200, blank=True)
    streamed = models.BooleanField(default=False)
    tokens_prompt = models.PositiveIntegerField(default=0)
    tokens_completion = models.PositiveIntegerField(default=0)
    tokens_reasoning = models.PositiveIntegerField(default=0)
    tokens_cached_prompt = models.PositiveIntegerField(default=0)
    cost_micro_usd = models.BigIntegerField(default=0)
    tool_costs_micro_usd = models.JSONField(default=dict, blank=True)
    # The provider's own report of the answer, by dialect (Cerebras `time_info`, Fireworks `perf_metrics`).
    provider_metadata = models.JSONField(default=dict, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    status = models.CharField(max_length=10, choices=GenerationStatus.choices)
    finish_reason = models.CharField(max_length=20, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    # For operators only (admin, logs): which provider failed and how, in its and the library's words.
    error_detail = models.TextField(blank=True)
    end_user = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The name of the constraint `unique=True` made, so databases that have it keep it.
            models.UniqueConstraint(fields=["request_id"], name="gateway_generation_request_id_key"),
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(fields=["model", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"
