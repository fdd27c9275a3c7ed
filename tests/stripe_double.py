"""localstripe — a stateful Stripe double with a fake Stripe.js — as a real HTTP server on loopback, for the
tests of money in. Stripe itself is outside this machine; this is the one fake that stands in for it."""

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.celery import app as celery_app

WEBHOOK_SECRET = "whsec_test_localstripe"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "billing.stripe_double", "--port", str(port), "--no-store"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a busy CI machine starts Python slowly
    while True:
        try:
            httpx.get(f"{url}/js.stripe.com/v3/", timeout=1)
            break
        except httpx.HTTPError:
            assert process.poll() is None, "localstripe exited"
            assert time.monotonic() < deadline, "localstripe did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def stripe_double(localstripe_url, settings, monkeypatch) -> Iterator[str]:
    """Billing talks to localstripe; webhook events are applied at once (Celery eager) unless a test runs
    a real worker."""
    from billing import stripe_api

    configuration = {
        "STRIPE_API_BASE": localstripe_url,
        "STRIPE_SECRET_KEY": "sk_test_localstripe",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_JS_URL": f"{localstripe_url}/js.stripe.com/v3/",
    }
    for name, value in configuration.items():
        setattr(settings, name, value)
        monkeypatch.setenv(name, value)  # for the processes a test starts (a Celery worker)
    stripe_api._client.cache_clear()
    eager, celery_app.conf.task_always_eager = celery_app.conf.get("task_always_eager", False), True
    yield localstripe_url
    celery_app.conf.task_always_eager = eager
    stripe_api._client.cache_clear()


def signed(event: dict, secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, str]:
    """A webhook delivery as Stripe signs it: (body, Stripe-Signature header)."""
    payload = json.dumps(event).encode()
    at = at or int(time.time())
    signature = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={at},v1={signature}"


def stripe_events(url: str, kind: str) -> list[dict]:
    """The events of a kind localstripe has emitted, every page of them."""
    events: list[dict] = []
    params: dict = {"limit": 100, "type": kind}
    while True:
        page = httpx.get(
            f"{url}/v1/events", params=params, auth=("sk_test_localstripe", ""), timeout=10
        ).json()
        events += page["data"]
        if not page.get("has_more") or not page["data"]:
            return events
        params["starting_after"] = page["data"][-1]["id"]


def card_set_up(url: str, setup_secret: str, number: str) -> dict:
    """What the (fake) Stripe.js does with a card typed into the page: confirm the SetupIntent with it.
    The confirmed SetupIntent, or {"error": …} for a card the double declines."""
    setup_intent = setup_secret.split("_secret_")[0]
    card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
    body = {
        "key": "pk_test_localstripe",
        "use_stripe_sdk": True,
        "client_secret": setup_secret,
        "payment_method_data": {"type": "card", "card": card},
    }
    return httpx.post(f"{url}/v1/setup_intents/{setup_intent}/confirm", json=body, timeout=10).json()


def three_d_secure(url: str, client_secret: str, *, success: bool) -> dict:
    """The card holder completing (or failing) 3-D Secure, as the fake Stripe.js's modal reports it."""
    intent = client_secret.split("_secret_")[0]
    body = {"key": "pk_test_localstripe", "client_secret": client_secret}
    flag = "true" if success else "false"
    return httpx.post(
        f"{url}/v1/payment_intents/{intent}/_authenticate?success={flag}", json=body, timeout=10
    ).json()
