"""Management reads for a key holder: the workspace's credits and this key's own settings and usage.

The serializers below both document the responses (drf-spectacular) and produce them: a view hands its
object to the response serializer and returns `serializer.data`, so each shape is written once.
"""

from datetime import datetime
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import LimitReset
from billing.money import micro_to_usd
from billing.selectors import WorkspaceCredits, workspace_credits
from console.api.authentication import ApiKeyAuthentication, KeyRequest
from console.models import ApiKey
from console.selectors import KeyAsSeen, api_key_as_seen
from core.drf import request_id_for

# --- OpenAPI documentation (drf-spectacular; gateway/openapi/ serves it in /openapi.json) --------------


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """ApiKeyAuthentication is the spec's `bearerAuth` scheme."""

    target_class = "console.api.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer"}


class InternalTokenScheme(OpenApiAuthenticationExtension):
    """InternalTokenAuthentication is the spec's `internalToken` scheme."""

    target_class = "console.api.authentication.InternalTokenAuthentication"
    name = "internalToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "apiKey", "in": "header", "name": "X-Internal-Token"}


ERROR_RESPONSE = OpenApiResponse(
    response={"$ref": "#/components/schemas/OpenAIError"},
    description="Error in this ingress format's native envelope, with the stable taxonomy `code` (002-R7). "
    "See the ErrorCode schema for the code → HTTP status mapping.",
)


# --- Fields: how amounts and times are written ------------------------------------------------------


class UsdField(serializers.FloatField):
    """An integer micro-USD amount written as a USD float (documented as a number)."""

    def to_representation(self, value: int) -> float:  # type: ignore[override]  # micro-USD in, not float
        return float(micro_to_usd(value))


class MicroUsdField(serializers.CharField):
    """An integer micro-USD amount written exactly, as a string of digits (documented as a string)."""

    def to_representation(self, value: int) -> str:  # type: ignore[override]  # micro-USD in, not str
        return str(int(value))


class IsoDateTimeField(serializers.DateTimeField):
    """A time as Python's isoformat() writes it (an offset such as +00:00, not DRF's `Z`)."""

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


# --- Response serializers (read-only: each reads an object's attributes) ----------------------------
# Typed with the object each one reads; DRF's serializers accept the subscript at run time.


class CreditsSerializer(serializers.Serializer[WorkspaceCredits]):
    """The calling key's workspace credits; amounts in USD, and exactly in micro-USD strings."""

    total_credits = UsdField(
        source="total_credits_micro_usd", help_text="Credits ever added, in USD (balance + total usage)."
    )
    total_usage = UsdField(source="total_usage_micro_usd", help_text="Total usage, in USD.")
    balance = UsdField(source="balance_micro_usd", help_text="The workspace balance, in USD.")
    balance_micro_usd = MicroUsdField(help_text="Exact balance in micro-USD, as a string.")
    reserved_micro_usd = MicroUsdField(help_text="Held by requests in flight, micro-USD string.")
    available_micro_usd = MicroUsdField(help_text="Balance minus reservations, micro-USD string.")
    total_usage_micro_usd = MicroUsdField(help_text="Exact total usage, micro-USD string.")


class CreditsResponseSerializer(serializers.Serializer[WorkspaceCredits]):
    # Serializes a billing.selectors.WorkspaceCredits as {"data": ...} (a comment: docstrings are published).
    # `data` is the envelope the spec names; DRF's metaclass takes declared fields off the class, so it never
    # meets Serializer.data.
    data = CreditsSerializer(source="*")  # type: ignore[assignment]


class KeyRateLimitSerializer(serializers.Serializer[ApiKey]):
    requests_per_minute = serializers.IntegerField(
        source="rate_limit_rpm", allow_null=True, help_text="Null: no per-key limit."
    )


class KeySerializer(serializers.Serializer[KeyAsSeen]):
    """The calling key's settings and usage; amounts in USD, and exactly in micro-USD strings."""

    name = serializers.CharField(source="key.name")
    prefix = serializers.CharField(source="key.prefix", help_text="The key's visible prefix.")
    workspace = serializers.CharField(source="key.workspace.slug", help_text="The workspace slug.")
    limit = UsdField(
        source="key.limit_micro_usd", allow_null=True, help_text="Credit limit in USD; null: none."
    )
    limit_reset = serializers.ChoiceField(
        source="key.limit_reset", choices=LimitReset.choices, help_text="When the limit resets."
    )
    limit_remaining = UsdField(
        source="spend.remaining_micro_usd", allow_null=True, help_text="USD left under the limit."
    )
    usage = UsdField(source="spend.lifetime_micro_usd", help_text="Lifetime spend through this key, in USD.")
    usage_micro_usd = MicroUsdField(
        source="spend.lifetime_micro_usd", help_text="Exact lifetime spend, micro-USD string."
    )
    rate_limit = KeyRateLimitSerializer(source="key")
    allowed_models = serializers.ListField(
        source="key.allowed_models",
        child=serializers.CharField(),
        help_text="Model slugs this key may call; empty allows all.",
    )
    expires_at = IsoDateTimeField(source="key.expires_at", allow_null=True)
    created_at = IsoDateTimeField(source="key.created_at")


class KeyResponseSerializer(serializers.Serializer[KeyAsSeen]):
    # Serializes a console.selectors.KeyAsSeen as {"data": ...}.
    data = KeySerializer(source="*")  # type: ignore[assignment]  # as CreditsResponseSerializer.data


# --- Views ----------------------------------------------------------------------------------------


class RequestIdApiView(APIView):
    """Every response, success or error, carries the request id in `X-Request-Id`."""

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["X-Request-Id"] = request_id_for(request)
        return response


class KeyApiView(RequestIdApiView):
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
    def get(self, request: KeyRequest) -> Response:
        summary = workspace_credits(workspace_id=request.auth.workspace_id)
        return Response(CreditsResponseSerializer(summary).data)


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
    def get(self, request: KeyRequest) -> Response:
        return Response(KeyResponseSerializer(api_key_as_seen(api_key=request.auth)).data)
