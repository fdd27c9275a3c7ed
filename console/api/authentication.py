"""Bearer-key authentication for the management API, in the three header forms clients send."""

import hmac

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from console.models import ApiKey
from console.services.keys import api_key_authenticate, api_key_touch
from core.api_keys import key_from_headers
from core.errors import ApiError, ErrorCode


class KeyHolder:
    """The principal of a key-authenticated request (not a dashboard user)."""

    is_authenticated = True

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key


class KeyRequest(Request):
    """A request ApiKeyAuthentication let through: its `auth` is the calling key (for type checking only;
    DRF builds plain Requests)."""

    auth: ApiKey


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[KeyHolder, ApiKey]:
        secret = key_from_headers(
            authorization=request.headers.get("Authorization", ""),
            x_api_key=request.headers.get("X-Api-Key", ""),
        )
        if secret is None:
            raise ApiError(ErrorCode.INVALID_API_KEY, "Missing API key: send Authorization: Bearer <key>.")
        api_key = api_key_authenticate(secret=secret)
        if api_key is None:
            raise ApiError(ErrorCode.INVALID_API_KEY, "Invalid, revoked or expired API key.")
        if api_key.workspace.is_locked:
            raise ApiError(ErrorCode.WORKSPACE_LOCKED, "This workspace is locked; contact support.")
        api_key_touch(api_key=api_key)
        return KeyHolder(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class InternalService:
    """The principal of a request from our own platform services (shared `X-Internal-Token`)."""

    is_authenticated = True


class InternalTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[InternalService, None]:
        expected = settings.INTERNAL_TOKEN
        if not expected:
            raise ApiError(
                ErrorCode.INVALID_API_KEY, "Internal endpoints are disabled: INTERNAL_TOKEN is not set."
            )
        presented = request.headers.get("X-Internal-Token", "")
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise ApiError(ErrorCode.INVALID_API_KEY, "Missing or wrong X-Internal-Token.")
        return InternalService(), None
