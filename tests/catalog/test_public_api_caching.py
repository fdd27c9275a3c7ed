"""The public catalog API (GET /api/v1/models and /api/v1/models/{slug}) is public, cacheable and open to
other sites: a strong ETag and a minute's Cache-Control, a 304 for a matching If-None-Match, no session
cookie, CORS open, no key needed (a bad one is ignored); a method it does not serve is a 405 in the
envelope."""

import hashlib

import pytest

from catalog.models import Model
from tests.catalog.public_api_helpers import KIMI, by_slug
from tests.factories import make_user

pytestmark = pytest.mark.django_db


# --- Public, cacheable, open to other sites ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/models", f"/api/v1/models/{KIMI}"])
def test_the_body_has_a_strong_etag_and_may_be_cached_for_a_minute(client, shipped_catalog, path):
    response = client.get(path)
    assert response["Cache-Control"] == "public, max-age=60"
    assert response["ETag"] == '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'
    assert response["Access-Control-Allow-Origin"] == "*" and response["X-Request-Id"]
    assert client.get(path)["ETag"] == response["ETag"]
    assert client.get(path, {"format": "openrouter"})["ETag"] != response["ETag"]


def test_a_signed_in_browser_gets_the_same_shareable_answer(client, shipped_catalog):
    """The API never opens the session, so no `Vary: Cookie` keeps shared caches from storing it."""
    client.force_login(make_user())
    response = client.get("/api/v1/models")
    assert response.status_code == 200
    assert "cookie" not in response.get("Vary", "").lower()
    assert "set-cookie" not in {name.lower() for name in response.headers}


@pytest.mark.parametrize("form", ["{}", "W/{}", '"other", {}', "*"])
@pytest.mark.parametrize("path", ["/api/v1/models", f"/api/v1/models/{KIMI}?format=huggingface"])
def test_a_matching_if_none_match_gets_304_without_a_body(client, shipped_catalog, path, form):
    etag = client.get(path)["ETag"]
    response = client.get(path, HTTP_IF_NONE_MATCH=form.format(etag))
    assert response.status_code == 304 and response.content == b""
    assert response["ETag"] == etag and response["Cache-Control"] == "public, max-age=60"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_the_etag_changes_when_the_catalog_does(client, shipped_catalog):
    etag = client.get("/api/v1/models")["ETag"]
    assert client.get("/api/v1/models", HTTP_IF_NONE_MATCH='"stale"').status_code == 200
    Model.objects.filter(slug=KIMI).update(name="Kimi K2 Instruct (renamed)")
    response = client.get("/api/v1/models", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200 and response["ETag"] != etag
    assert by_slug(response.json()["data"])[KIMI]["name"] == "Kimi K2 Instruct (renamed)"


@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_AUTHORIZATION": "Bearer hi-wrong"}, {"HTTP_X_API_KEY": "nope"}, {"HTTP_AUTHORIZATION": "x"}],
)
def test_no_key_is_needed_and_a_bad_one_is_ignored(client, shipped_catalog, headers):
    anonymous = client.get("/api/v1/models").content
    for path in ("/api/v1/models", f"/api/v1/models/{KIMI}"):
        response = client.get(path, **headers)
        assert response.status_code == 200, response.content
    assert client.get("/api/v1/models", **headers).content == anonymous


def test_a_method_the_catalog_does_not_serve_is_a_405_in_the_envelope(client, shipped_catalog):
    response = client.post("/api/v1/models", {})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["request_id"] == response["X-Request-Id"]
