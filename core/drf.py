"""The management and catalog APIs' errors (Django REST framework views): every refusal in the OpenAI
envelope with its taxonomy code, and an X-Request-Id on every answer."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.envelopes import openai_error_body
from core.errors import HTTP_STATUS, ApiError, ErrorCode
from core.ids import new_request_id


def request_id_for(request: Request) -> str:
    if not hasattr(request, "request_id"):
        request.request_id = new_request_id()  # type: ignore[attr-defined]
    return request.request_id  # type: ignore[attr-defined]


def error_response(
    request: Request, code: ErrorCode, message: str, param: str | None = None, status: int | None = None
) -> Response:
    request_id = request_id_for(request)
    body = openai_error_body(code, message, request_id, param)
    return Response(body, status=status or HTTP_STATUS[code], headers={"X-Request-Id": request_id})


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """settings.REST_FRAMEWORK["EXCEPTION_HANDLER"]."""
    request = context["request"]
    if isinstance(exc, ApiError):
        return error_response(request, exc.code, exc.message, exc.param, exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected exception: Django's 500 handling and logging take over
    detail = str(getattr(exc, "detail", exc))
    if isinstance(exc, exceptions.NotFound | exceptions.MethodNotAllowed):
        # The taxonomy files these under invalid_request; the HTTP status stays the true one (404, 405).
        return error_response(request, ErrorCode.INVALID_REQUEST, detail, status=response.status_code)
    if isinstance(exc, exceptions.Throttled):
        return error_response(request, ErrorCode.RATE_LIMIT_EXCEEDED, detail)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return error_response(request, ErrorCode.INVALID_API_KEY, detail)
    return error_response(request, ErrorCode.INVALID_REQUEST, detail)


def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """Any /api/v1/ path nothing serves: the JSON envelope, never Django's HTML page."""
    request_id = new_request_id()
    message = f"{request.method} {request.path}: no such endpoint (see /openapi.json)."
    body = openai_error_body(ErrorCode.INVALID_REQUEST, message, request_id)
    return JsonResponse(body, status=404, headers={"X-Request-Id": request_id})
