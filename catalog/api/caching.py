"""Public, cacheable JSON for the catalog API: exact body bytes, a strong ETag over them, 304 on a match."""

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified

from core.encoding import compact_json
from core.http_caching import etag_matches, strong_etag

MAX_AGE_SECONDS = 60
CACHE_CONTROL = f"public, max-age={MAX_AGE_SECONDS}"


def cacheable_json(request: HttpRequest, payload: Any) -> HttpResponse:
    """200 with the JSON body, or 304 with no body when the client already holds these exact bytes."""
    body = compact_json(payload)
    etag = strong_etag(body)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response
