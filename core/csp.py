"""Content-Security-Policy on every page Django serves: scripts only from this site (and Stripe.js, for the
credits page), no inline script, no eval, no plugins, no framing, forms posting only here.

Styles come from this site too; only `style` attributes may be inline (a creator's brand colour is one).
With DEBUG on the policy is left out, so Django's own debug pages keep their inline styles and scripts.
"""

import functools
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

STRIPE_API = "https://api.stripe.com"
STRIPE_FRAMES = "https://hooks.stripe.com"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy() -> str:
    """The policy, from the settings that say where Stripe.js and Stripe's API are (localstripe in dev)."""
    return _policy(settings.STRIPE_JS_URL, settings.STRIPE_API_BASE)


@functools.cache
def _policy(stripe_js_url: str, stripe_api_base: str) -> str:
    stripe_js = _origin(stripe_js_url)
    stripe_api = _origin(stripe_api_base) or STRIPE_API
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' {stripe_js}",
        "style-src": "'self'",
        "style-src-attr": "'unsafe-inline'",
        "img-src": "'self' data:",
        "connect-src": f"'self' {stripe_api}",
        "frame-src": f"{stripe_js} {STRIPE_FRAMES}",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value.strip()}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not settings.DEBUG and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy()
        return response
