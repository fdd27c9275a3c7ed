"""The key's three header forms, and strong ETags with If-None-Match."""

import pytest

from core.api_keys import key_from_headers
from core.http_caching import etag_matches, strong_etag


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer hi-abc", "", "hi-abc"),  # OpenAI SDK
        ("bearer  hi-abc ", "", "hi-abc"),
        ("Api-Key hi-abc", "", "hi-abc"),  # Baseten style
        ("", "hi-abc", "hi-abc"),  # Anthropic SDK
        ("", " hi-abc ", "hi-abc"),
        ("Bearer hi-first", "hi-second", "hi-first"),  # Authorization wins
        ("Basic dXNlcjpwYXNz", "hi-abc", "hi-abc"),  # another scheme is not a key
        ("Bearer ", "", None),
        ("", "", None),
        ("hi-abc", "", None),  # no scheme
    ],
)
def test_the_key_comes_from_authorization_or_x_api_key(authorization, x_api_key, expected):
    assert key_from_headers(authorization=authorization, x_api_key=x_api_key) == expected


def test_a_strong_etag_changes_with_any_byte():
    assert strong_etag(b'{"a":1}') == strong_etag(b'{"a":1}')
    assert strong_etag(b'{"a":1}') != strong_etag(b'{"a":2}')
    assert strong_etag(b"x").startswith('"') and not strong_etag(b"x").startswith("W/")


def test_if_none_match_uses_the_weak_comparison():
    etag = strong_etag(b"body")
    assert etag_matches(etag, etag)
    assert etag_matches(f'"other", W/{etag}', etag)
    assert etag_matches("*", etag)
    assert not etag_matches('"other"', etag)
