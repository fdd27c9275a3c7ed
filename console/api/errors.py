"""Management API errors in the OpenAI envelope with the taxonomy code (spec `OpenAIError`)."""

import uuid

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from gateway.errors import HTTP_STATUS, ErrorCode

_OPENAI_TYPES = {
    ErrorCode.INVALID_API_KEY: "authentication_error",
    ErrorCode.WORKSPACE_LOCKED: "permission_error",
    ErrorCode.INVALID_REQUEST: "invalid_request_error",
    ErrorCode.INTERNAL_ERROR: "api_error",
}


class ApiError(exceptions.APIException):
    """An error with a taxonomy code; its HTTP status is the code's unless given (e.g. 404 for an unknown
    resource, which the taxonomy files under `invalid_request`)."""

    def __init__(self, code: ErrorCode, message: str, param: str | None = None, status: int | None = None):
        super().__init__(detail=message)
        self.code = code
        self.status_code = status or HTTP_STATUS[code]
        self.param = param


def request_id_for(request) -> str:
    if not hasattr(request, "request_id"):
        request.request_id = uuid.uuid4().hex
    return request.request_id


def error_response(
    request, code: ErrorCode, message: str, param: str | None = None, status: int | None = None
) -> Response:
    request_id = request_id_for(request)
    body = {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(code, "invalid_request_error"),
            "code": code.value,
            "param": param,
            "request_id": request_id,
        }
    }
    return Response(body, status=status or HTTP_STATUS[code], headers={"X-Request-Id": request_id})


def exception_handler(exc, context):
    request = context["request"]
    if isinstance(exc, ApiError):
        return error_response(request, exc.code, str(exc.detail), exc.param, exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected exception: Django's 500 handling and logging take over
    if isinstance(exc, exceptions.NotFound | exceptions.MethodNotAllowed):
        # The taxonomy files these under invalid_request; the HTTP status stays the true one (404, 405).
        return error_response(
            request, ErrorCode.INVALID_REQUEST, str(exc.detail), status=response.status_code
        )
    if isinstance(exc, exceptions.Throttled):
        return error_response(request, ErrorCode.RATE_LIMIT_EXCEEDED, str(exc.detail))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return error_response(request, ErrorCode.INVALID_API_KEY, str(exc.detail))
    return error_response(request, ErrorCode.INVALID_REQUEST, str(exc.detail))
