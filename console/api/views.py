"""Management reads for a key holder: the workspace's credits and this key's own settings and usage."""

from django.db.models import Sum
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import EntryKind, LedgerEntry, LimitReset
from billing.money import micro_to_usd
from billing.selectors import account_for, key_spend_seen, usage_unflushed
from console.api.authentication import ApiKeyAuthentication
from core.drf import request_id_for


def _usd(micro: int | None) -> float | None:
    return None if micro is None else float(micro_to_usd(micro))


# --- OpenAPI documentation (drf-spectacular; gateway/openapi.py serves it in /openapi.json) --------------


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """ApiKeyAuthentication is the spec's `bearerAuth` scheme."""

    target_class = "console.api.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}


class InternalTokenScheme(OpenApiAuthenticationExtension):
    """InternalTokenAuthentication is the spec's `internalToken` scheme."""

    target_class = "console.api.authentication.InternalTokenAuthentication"
    name = "internalToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Internal-Token"}


ERROR_RESPONSE = OpenApiResponse(
    response={"$ref": "#/components/schemas/OpenAIError"},
    description="Error in this ingress format's native envelope, with the stable taxonomy `code` (002-R7). "
    "See the ErrorCode schema for the code → HTTP status mapping.",
)


# Response serializers document the views' responses (the views build their dicts themselves).


class CreditsSerializer(serializers.Serializer):
    """The calling key's workspace credits; amounts in USD, and exactly in micro-USD strings."""

    total_credits = serializers.FloatField(help_text="Credits ever added, in USD (balance + total usage).")
    total_usage = serializers.FloatField(help_text="Total usage, in USD.")
    balance = serializers.FloatField(help_text="The workspace balance, in USD.")
    balance_micro_usd = serializers.CharField(help_text="Exact balance in micro-USD, as a string.")
    reserved_micro_usd = serializers.CharField(help_text="Held by requests in flight, micro-USD string.")
    available_micro_usd = serializers.CharField(help_text="Balance minus reservations, micro-USD string.")
    total_usage_micro_usd = serializers.CharField(help_text="Exact total usage, micro-USD string.")


class CreditsResponseSerializer(serializers.Serializer):
    data = CreditsSerializer()


class KeyRateLimitSerializer(serializers.Serializer):
    requests_per_minute = serializers.IntegerField(allow_null=True, help_text="Null: no per-key limit.")


class KeySerializer(serializers.Serializer):
    """The calling key's settings and usage; amounts in USD, and exactly in micro-USD strings."""

    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's visible prefix.")
    workspace = serializers.CharField(help_text="The workspace slug.")
    limit = serializers.FloatField(allow_null=True, help_text="Credit limit in USD; null: none.")
    limit_reset = serializers.ChoiceField(choices=LimitReset.choices, help_text="When the limit resets.")
    limit_remaining = serializers.FloatField(allow_null=True, help_text="USD left under the limit.")
    usage = serializers.FloatField(help_text="Lifetime spend through this key, in USD.")
    usage_micro_usd = serializers.CharField(help_text="Exact lifetime spend, micro-USD string.")
    rate_limit = KeyRateLimitSerializer()
    allowed_models = serializers.ListField(
        child=serializers.CharField(), help_text="Model slugs this key may call; empty allows all."
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class KeyResponseSerializer(serializers.Serializer):
    data = KeySerializer()


# --- Views ----------------------------------------------------------------------------------------


class RequestIdMixin:
    """Every response, success or error, carries the request id in `X-Request-Id`."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["X-Request-Id"] = request_id_for(request)
        return response


class KeyApiView(RequestIdMixin, APIView):
    authentication_classes = [ApiKeyAuthentication]


class CreditsView(KeyApiView):
    """GET /api/v1/credits: the workspace's balance, credits added and total usage."""

    @extend_schema(
        operation_id="getCredits",
        tags=["Management"],
        summary="Get the workspace's credits",
        description="The calling key's workspace: balance, credits added and total usage.",
        responses={
            200: OpenApiResponse(CreditsResponseSerializer, description="The workspace's credits."),
            "default": ERROR_RESPONSE,
        },
    )
    def get(self, request):
        workspace_id = request.auth.workspace_id
        account = account_for(workspace_id=workspace_id)
        sums = (
            LedgerEntry.objects.filter(workspace_id=workspace_id)
            .values("kind")
            .annotate(total=Sum("amount_micro_usd"))
        )
        by_kind = {row["kind"]: row["total"] for row in sums}
        usage = -by_kind.get(EntryKind.USAGE, 0) + usage_unflushed(workspace_id=workspace_id)
        credited = account.balance_micro_usd + usage
        return Response(
            {
                "data": {
                    "total_credits": _usd(credited),
                    "total_usage": _usd(usage),
                    "balance": _usd(account.balance_micro_usd),
                    "balance_micro_usd": str(account.balance_micro_usd),
                    "reserved_micro_usd": str(account.reserved_micro_usd),
                    "available_micro_usd": str(account.available_micro_usd),
                    "total_usage_micro_usd": str(usage),
                }
            }
        )


class KeyView(KeyApiView):
    """GET /api/v1/key: this key's name, limit, remaining limit, usage, rate limit and expiry."""

    @extend_schema(
        operation_id="getKey",
        tags=["Management"],
        summary="Get the calling key",
        description="The calling key's name, credit limit and what is left of it, usage, rate limit, "
        "model allowlist and expiry.",
        responses={
            200: OpenApiResponse(KeyResponseSerializer, description="The calling key."),
            "default": ERROR_RESPONSE,
        },
    )
    def get(self, request):
        key = request.auth
        spend = key_spend_seen(api_key_id=key.pk, limit_micro_usd=key.limit_micro_usd, reset=key.limit_reset)
        return Response(
            {
                "data": {
                    "name": key.name,
                    "prefix": key.prefix,
                    "workspace": key.workspace.slug,
                    "limit": _usd(key.limit_micro_usd),
                    "limit_reset": key.limit_reset,
                    "limit_remaining": _usd(spend.remaining_micro_usd),
                    "usage": _usd(spend.lifetime_micro_usd),
                    "usage_micro_usd": str(spend.lifetime_micro_usd),
                    "rate_limit": {"requests_per_minute": key.rate_limit_rpm},
                    "allowed_models": key.allowed_models,
                    "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                    "created_at": key.created_at.isoformat(),
                }
            }
        )
