"""Strong ETags over exact response bytes, and If-None-Match (the catalog API and /openapi.json)."""

import hashlib


def strong_etag(body: bytes) -> str:
    """A strong validator: it changes whenever a byte of the body does."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`, `*` matches all."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
