"""Internal endpoints for the platform's own services, authenticated with `X-Internal-Token`."""

from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from console.api.authentication import InternalTokenAuthentication
from console.api.views import ERROR_RESPONSE, IsoDateTimeField, RequestIdApiView
from console.errors import InvalidField, NotPermitted
from console.models import PlaygroundSource, User, Workspace
from console.services.keys import IssuedKey, playground_key_mint
from core.errors import ApiError, ErrorCode

# The spec's own request and response shapes for mintPlaygroundKey, documented verbatim.
PLAYGROUND_KEY_REQUEST = {
    "type": "object",
    "required": ["workspace_id", "user_id"],
    "properties": {
        "workspace_id": {"type": "string"},
        "user_id": {"type": "string"},
        "source": {"type": "string", "enum": ["playground", "chat"], "default": "playground"},
    },
}
PLAYGROUND_KEY_RESPONSE = {
    "type": "object",
    "required": ["key", "expires_at", "source"],
    "properties": {
        "key": {"type": "string"},
        "expires_at": {"type": "string", "format": "date-time"},
        "source": {"type": "string", "enum": ["playground", "chat"]},
    },
}


class PlaygroundKeySerializer(serializers.Serializer[IssuedKey]):
    """Writes an IssuedKey in PLAYGROUND_KEY_RESPONSE's shape (the spec's schema stays the documentation;
    tests/console/test_playground_keys_api.py checks the two agree)."""

    key = serializers.CharField(source="secret")
    expires_at = IsoDateTimeField(source="record.expires_at")
    # A declared field named like Field.source: DRF's metaclass takes it off the class, so they never meet.
    source = serializers.ChoiceField(source="record.source", choices=PlaygroundSource.values)  # type: ignore[assignment]


class RequiredBodySchema(AutoSchema):
    """drf-spectacular marks a body given as a raw schema optional; this one is required."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation and "requestBody" in operation:
            operation["requestBody"]["required"] = True
        return operation


def _required_string(body: dict[str, Any], field: str) -> str:
    """A field the schema requires as a string; an empty one is well formed and names nothing (a 404)."""
    value = body.get(field)
    if not isinstance(value, str):
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{field}: required, a string.", param=field)
    return value.strip()


class PlaygroundKeysView(RequestIdApiView):
    """POST /api/v1/playground-keys: a one-time, 10-minute key for the docs playground or dashboard chat."""

    authentication_classes = [InternalTokenAuthentication]
    schema = RequiredBodySchema()

    @extend_schema(
        operation_id="mintPlaygroundKey",
        tags=["Internal"],
        summary="Mint a one-time playground key (internal)",
        description="INTERNAL — platform app only, authenticated with the `X-Internal-Token` shared secret "
        "(003-R13). Mints a one-time key (10 min TTL) for the docs playground / dashboard chat. "
        "Not available to API-key callers.",
        extensions={"x-internal": True},
        request={"application/json": PLAYGROUND_KEY_REQUEST},
        responses={
            201: OpenApiResponse(response=PLAYGROUND_KEY_RESPONSE, description="The one-time key."),
            "default": ERROR_RESPONSE,
        },
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise ApiError(ErrorCode.INVALID_REQUEST, "The body must be a JSON object.")
        workspace_id = _required_string(body, "workspace_id")
        user_id = _required_string(body, "user_id")
        source = body.get("source", PlaygroundSource.PLAYGROUND)
        if source not in PlaygroundSource.values:
            raise ApiError(
                ErrorCode.INVALID_REQUEST, "source: must be 'playground' or 'chat'.", param="source"
            )
        workspace = _find(Workspace, workspace_id, "workspace_id")
        user = _find(User, user_id, "user_id")
        if workspace.is_locked:
            raise ApiError(ErrorCode.WORKSPACE_LOCKED, "This workspace is locked.")
        try:
            issued = playground_key_mint(workspace=workspace, user=user, source=source)
        except InvalidField as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, str(exc), param=exc.field) from exc
        except NotPermitted as exc:  # the user is not a member of the workspace
            raise ApiError(ErrorCode.INVALID_REQUEST, str(exc), param="user_id") from exc
        return Response(PlaygroundKeySerializer(issued).data, status=201)


_M = TypeVar("_M", bound=Model)


def _find(model: type[_M], pk: str, field: str) -> _M:
    try:
        found = model._default_manager.filter(pk=pk).first()  # `objects` for Workspace and User
    except (ValueError, ValidationError):  # a malformed id: Django refuses it for an int or a UUID key
        found = None
    if found is None:  # no not-found code in the taxonomy: invalid_request with 404, as the catalog's
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"{field}: no such {model._meta.verbose_name}.",
            param=field,
            status=404,
        )
    return found
