"""The public catalog API: GET /api/v1/models and /api/v1/models/{slug}, public, cacheable, CORS."""

from collections.abc import Iterable
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api.caching import cacheable_json
from catalog.api.formats import Format, model_body, models_body
from catalog.api.openapi import (
    ERROR_RESPONSE,
    FORMAT_ERROR_RESPONSE,
    FORMAT_PARAMETER,
    LISTING_RESPONSE,
    MODEL_RESPONSE,
    SLUG_PARAMETER,
    PublicSchema,
)
from catalog.selectors import model_get, models_active, weekly_token_volumes
from core.drf import request_id_for
from core.errors import ApiError, ErrorCode


class JsonOnly(BaseContentNegotiation):
    """Always JSON. DRF's default would read `?format=` as a renderer name and answer 404 to `openrouter`."""

    # DRF passes lists; the stubs promise only an Iterable.
    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def requested_format(request: Request) -> Format:
    value = request.query_params.get("format")
    if value is None:
        return Format.DEFAULT
    try:
        return Format(value)
    except ValueError:
        accepted = ", ".join(fmt.value for fmt in Format)
        raise ApiError(
            ErrorCode.INVALID_REQUEST, f"format: must be one of {accepted}; got {value!r}.", param="format"
        ) from None


def volumes_for(fmt: Format) -> dict[str, int]:
    """Each model's weekly token volume; only HyperInfer's own shape carries it."""
    return weekly_token_volumes() if fmt is Format.DEFAULT else {}


class PublicCatalogView(APIView):
    """Anyone may read the catalog, from any site: no authentication (an Authorization header is ignored)."""

    authentication_classes = []
    permission_classes = []
    content_negotiation_class = JsonOnly
    schema = PublicSchema()

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["X-Request-Id"] = request_id_for(request)
        response["Access-Control-Allow-Origin"] = "*"
        response["Access-Control-Expose-Headers"] = "ETag, X-Request-Id"
        return response


class ModelsView(PublicCatalogView):
    """GET /api/v1/models: every active model, in catalog order."""

    @extend_schema(
        operation_id="listModels",
        tags=["Catalog"],
        summary="List models",
        description="Public model catalog from providers.yaml (002-R13): pricing, context length, max output "
        "tokens, features, datacenter locations. No auth required (002-R3).",
        parameters=[FORMAT_PARAMETER],
        responses={
            200: OpenApiResponse(LISTING_RESPONSE, description="The catalog, in the shape `format` selects."),
            400: FORMAT_ERROR_RESPONSE,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        fmt = requested_format(request)
        return cacheable_json(request, models_body(models_active(), fmt, volumes_for(fmt)))


class ModelView(PublicCatalogView):
    """GET /api/v1/models/{slug}: one active model."""

    @extend_schema(
        operation_id="getModel",
        tags=["Catalog"],
        summary="Get a model",
        description="One model of the public catalog by its slug (which contains a slash), in the shape "
        "`format` selects. No auth required.",
        parameters=[SLUG_PARAMETER, FORMAT_PARAMETER],
        responses={
            200: OpenApiResponse(MODEL_RESPONSE, description="The model."),
            "default": ERROR_RESPONSE,
        },
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        fmt = requested_format(request)
        model = model_get(slug)
        if model is None:
            # The taxonomy has no not-found code: invalid_request with 404, as GET /api/v1/generation does.
            raise ApiError(
                ErrorCode.INVALID_REQUEST, f"No model {slug!r} in the catalog.", param="slug", status=404
            )
        return cacheable_json(request, model_body(model, fmt, volumes_for(fmt)))
