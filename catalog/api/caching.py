"""Public, cacheable JSON for the catalog API: exact body bytes, a strong ETag over them, 304 on a match."""

import hashlib
import json
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified

MAX_AGE_SECONDS = 60
CACHE_CONTROL = f"public, max-age={MAX_AGE_SECONDS}"


def json_body(payload: Any) -> bytes:
    """The bytes served: compact UTF-8 JSON, key order as built."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def strong_etag(body: bytes) -> str:
    """A strong validator: it changes whenever a byte of the body does."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`, `*` matches all."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def cacheable_json(request: HttpRequest, payload: Any) -> HttpResponse:
    """200 with the JSON body, or 304 with no body when the client already holds these exact bytes."""
    body = json_body(payload)
    etag = strong_etag(body)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response
