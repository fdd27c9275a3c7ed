"""Add credits as a new user does it, in headless Chromium (Playwright driving Debian's chromium) against the
running site and localstripe's fake Stripe.js: sign up, pay $10 with the test card, see the balance and the
payment; a card that asks for 3-D Secure completes; a declined card says so and credits nothing.
Screenshots are saved (SCREENSHOT_DIR, default .artifacts/screenshots)."""

import re
import uuid
from decimal import Decimal

import pytest

from billing.models import EntryKind, LedgerEntry, Payment
from console.models import User
from tests.catalog.test_pages_browser import screenshot_dir

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def sign_up(page, base: str) -> User:
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(f"{base}/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "a long enough password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/keys/"))  # a new user is sent to create a first key
    return User.objects.get(email=email)


def dollars(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def type_card(page, number: str) -> None:
    """Into the fake Stripe.js card element, as a person types it."""
    page.fill("#card-element input[placeholder=number]", number)
    page.fill("#card-element input[placeholder=exp_month]", "12")
    page.fill("#card-element input[placeholder=exp_year]", "34")
    page.fill("#card-element input[placeholder=cvc]", "123")
    page.fill("#card-element input[placeholder=postal_code]", "75001")


def test_a_new_user_pays_10_dollars_and_sees_them_in_the_balance(live_server, page):
    user = sign_up(page, live_server.url)
    workspace = user.memberships.get().workspace
    page.goto(f"{live_server.url}/billing/add/")
    assert page.locator(".test-mode").is_visible()  # no real card can be charged here
    before = dollars(page.inner_text("#balance"))
    type_card(page, "4242424242424242")
    page.check("#save-card")
    page.screenshot(path=str(screenshot_dir() / "credits-add.png"), full_page=True)
    page.click("#pay-button")
    page.wait_for_url(re.compile(r"/billing/payments/\?paid=pi_"))
    assert dollars(page.inner_text("#balance")) == before + 10
    row = page.locator("#payments tbody tr").first
    assert "$10.00" in row.inner_text() and "Visa •••• 4242" in row.inner_text()
    assert "Succeeded" in row.inner_text()
    page.screenshot(path=str(screenshot_dir() / "credits-paid.png"), full_page=True)
    purchase = LedgerEntry.objects.get(workspace=workspace, kind=EntryKind.PURCHASE)
    assert purchase.amount_micro_usd == 10_000_000
    assert purchase.reference == Payment.objects.get(workspace=workspace).payment_intent_id

    row.get_by_role("link", name="Receipt", exact=True).click()
    page.wait_for_url(re.compile(r"/receipt/$"))
    assert "HyperInfer receipt" in page.inner_text("h1") and "$10.00" in page.content()
    page.screenshot(path=str(screenshot_dir() / "credits-receipt.png"), full_page=True)


def test_a_card_that_asks_for_3d_secure_completes_in_the_page(live_server, page):
    user = sign_up(page, live_server.url)
    page.goto(f"{live_server.url}/billing/add/")
    before = dollars(page.inner_text("#balance"))
    page.check("input[name=preset][value=custom]")
    page.fill("#custom-amount", "12.50")
    type_card(page, "4000002760003184")
    page.click("#pay-button")
    # The card holder's bank asks (the fake Stripe.js's 3-D Secure dialog): to save the card, then to pay.
    for _ in range(2):
        page.click("text=Complete authentication")
    page.wait_for_url(re.compile(r"/billing/payments/\?paid=pi_"))
    page.screenshot(path=str(screenshot_dir() / "credits-3ds-paid.png"), full_page=True)
    assert dollars(page.inner_text("#balance")) == before + Decimal("12.50")
    assert Payment.objects.get(workspace=user.memberships.get().workspace).amount_micro_usd == 12_500_000


def test_a_declined_card_shows_a_clear_message_and_credits_nothing(live_server, page):
    user = sign_up(page, live_server.url)
    page.goto(f"{live_server.url}/billing/add/")
    type_card(page, "4000000000000002")
    page.click("#pay-button")
    page.wait_for_selector("#pay-error:not([hidden])")
    assert "declined" in page.inner_text("#pay-error").lower()
    page.screenshot(path=str(screenshot_dir() / "credits-declined.png"), full_page=True)
    workspace = user.memberships.get().workspace
    assert not LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.PURCHASE).exists()


def test_an_amount_out_of_bounds_is_refused_by_the_server_naming_the_field(live_server, page):
    sign_up(page, live_server.url)
    page.goto(f"{live_server.url}/billing/add/")
    page.check("input[name=preset][value=custom]")
    page.evaluate(
        "document.getElementById('custom-amount').removeAttribute('min')"
    )  # past the browser's check
    page.fill("#custom-amount", "1")
    type_card(page, "4242424242424242")
    page.click("#pay-button")
    page.wait_for_selector("#pay-error:not([hidden])")
    assert "between $5 and $1,000" in page.inner_text("#pay-error")
    assert not Payment.objects.exists()
