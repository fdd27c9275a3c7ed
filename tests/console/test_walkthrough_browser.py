"""A new user's first hour on the dashboard, in headless Chromium (Playwright driving Debian's chromium) on
the whole site as production serves it — Django and the gateway in one ASGI app on uvicorn, the production
Content-Security-Policy on: sign up, create keys, call the gateway, read Activity and its detail pages,
see Usage after the rollup task ran on a real Celery worker, chat in the playground and stop an answer,
verify the e-mail (only then the sign-up grant), invite a colleague who signs up through the link.
Screenshots of every page at 1280 x 800 and 390 x 844 are saved (SCREENSHOT_DIR, default
.artifacts/screenshots) and checked for sideways overflow."""

import json
import re
import time
import uuid
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.core import mail
from django.db.models import Sum

from billing.models import UsagePeriod, UsageRollup
from billing.selectors import account_for
from billing.services import credits_grant
from console.models import Membership, User
from console.templatetags.money import usd
from gateway.auth import key_cache
from gateway.catalog_cache import catalog_cache
from gateway.models import Generation
from gateway.tasks import roll_up_usage_task
from tests.catalog.test_pages_browser import chromium_path, screenshot_dir
from tests.gateway.conftest import ServerThread, settled_generation

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PRICED, FREE = "hyperinfer/sandbox-pro", "hyperinfer/sandbox"
SIZES = ((1280, 800), (390, 844))


@pytest.fixture
def site(transactional_db, shipped_catalog, settings):
    settings.EMBEDDED_BEAT = False  # the test runs the rollup on a real worker itself
    catalog_cache.invalidate()
    key_cache._entries.clear()
    with ServerThread(static=True) as url:
        yield url
    catalog_cache.invalidate()


@pytest.fixture
def browser(site, monkeypatch):
    """A Chromium context on the site; the test fails if the Content-Security-Policy refused anything."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API keeps a loop here
    refused: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])

        def new_page(width: int = 1280, height: int = 800):
            context = chromium.new_context(viewport={"width": width, "height": height})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("console", lambda m: "Content Security Policy" in m.text and refused.append(m.text))
            return page

        yield new_page
        chromium.close()
    assert not refused, refused


# Every visible element with text of its own whose colour contrasts less than 4.5:1 (WCAG AA) with the
# background it sits on (the first opaque one up its ancestors). Disabled controls are exempt, as in WCAG.
LOW_CONTRAST = r"""() => {
  const rgba = (css) => (css.match(/[\d.]+/g) || []).map(Number);
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const found = [];
  for (const el of document.body.querySelectorAll("*")) {
    const style = getComputedStyle(el);
    if (!el.getClientRects().length || style.visibility === "hidden" || el.closest(":disabled")) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const [a, b] = [luminance(rgba(style.color)), luminance(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < 4.5) found.push(`${el.tagName}.${el.className}: ${ratio.toFixed(2)} "${text}"`);
  }
  return found;
}"""


def shoot_everywhere(browser, site: str, paths: dict[str, str], storage_state) -> None:
    """Every page at both sizes: a screenshot each, no page wider than the screen, no text that contrasts
    less than 4.5:1 with its background."""
    for width, height in SIZES:
        page = browser(width, height)
        page.context.add_cookies(storage_state["cookies"])
        for name, path in paths.items():
            page.goto(site + path)
            page.screenshot(path=str(screenshot_dir() / f"walkthrough-{name}-{width}.png"), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{path} is {overflow} px wide on a {width} px screen"
            assert page.evaluate(LOW_CONTRAST) == [], path
        page.context.close()


def rolled_requests(workspace) -> int:
    hours = UsageRollup.objects.filter(workspace=workspace, period=UsagePeriod.HOUR)
    return hours.aggregate(n=Sum("requests"))["n"] or 0


def money(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def create_key(page, site: str, name: str) -> str:
    page.goto(f"{site}/keys/")
    page.fill("input[name=name]", name)
    page.click("button:has-text('Create key')")
    page.wait_for_selector("#secret")
    return page.inner_text("#secret").strip()


def call(site: str, secret: str, path: str, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.post(f"{site}{path}", json=body, headers=headers, timeout=30)


def chat(model: str, max_tokens: int = 24) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": max_tokens}


def eventually(read, expected, seconds: float = 15.0, *, until_not: bool = False):
    """What `read()` returns once it equals `expected` (or, with `until_not`, once it differs from it)."""
    deadline = time.monotonic() + seconds
    while True:
        got = read()
        if (got != expected) if until_not else (got == expected):
            return got
        wanted = f"not {expected!r}" if until_not else repr(expected)
        assert time.monotonic() < deadline, f"still {got!r}, expected {wanted}"
        time.sleep(0.2)


def test_a_new_user_signs_up_calls_the_gateway_and_reads_activity_usage_and_the_playground(
    site, browser, worker
):
    page = browser()
    email = f"walker-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(f"{site}/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "a long enough password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/keys/"))
    user = User.objects.get(email=email)
    workspace = user.memberships.get().workspace
    assert account_for(workspace_id=workspace.pk).balance_micro_usd == 0  # no grant before verification
    assert page.locator("[data-testid=verify-banner]").is_visible()
    # With nothing to spend, the playground says so in words, with the way out.
    page.goto(f"{site}/playground/")
    page.select_option("#pg-model", PRICED)
    page.fill("#pg-message", "Hello?")
    page.click("#pg-send")
    refusal = page.locator("#pg-error")
    refusal.wait_for()
    assert "Not enough credits" in refusal.inner_text() and "(insufficient_credits)" in refusal.inner_text()
    assert refusal.locator("a", has_text="Add credits").get_attribute("href") == "/billing/add/"
    assert page.locator(".transcript li.assistant").count() == 0
    # That refusal is on record, at no charge: Activity will list it among the requests below.
    chat_refusal = eventually(
        lambda: Generation.objects.filter(workspace=workspace, source="chat").first(), None, until_not=True
    )
    assert (chat_refusal.error_code, chat_refusal.cost_micro_usd) == ("insufficient_credits", 0)
    # Credits the way an operator adds them (the grant waits for the e-mail): 3 cents.
    credits_grant(workspace_id=workspace.pk, amount_micro_usd=30_000, reason="Operator grant")

    # --- two keys, five requests: two models, three formats, one refused for credits on the second key ----
    main = create_key(page, site, "main")
    second = create_key(page, site, "second")
    responses = [
        call(site, main, "/api/v1/chat/completions", chat(PRICED)),
        call(site, main, "/api/v1/responses", {"model": PRICED, "input": "Say hi", "max_output_tokens": 24}),
        call(site, main, "/api/v1/chat/completions", chat(FREE)),
        call(site, main, "/api/v1/messages", {**chat(FREE), "max_tokens": 16}),
        # Its worst case (16,384 tokens at $2.50/M ≈ $0.041) is more than the 3 cents.
        call(site, second, "/api/v1/chat/completions", chat(PRICED, max_tokens=16_384)),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 402]
    assert responses[-1].json()["error"]["code"] == "insufficient_credits"
    ids = [r.headers["x-request-id"] for r in responses]
    records = {request_id: settled_generation(request_id, timeout=15) for request_id in ids}
    assert sum(g.cost_micro_usd > 0 for g in records.values()) == 2  # the priced model's two answers

    # --- Activity: every request, with its figures ---------------------------------------------------------
    def listed() -> list[str]:
        page.goto(f"{site}/activity/")
        return page.eval_on_selector_all("tr[data-request-id]", "rows => rows.map(r => r.dataset.requestId)")

    listed_records = [*records.values(), chat_refusal]
    newest_first = [g.request_id for g in sorted(listed_records, key=lambda g: g.created_at, reverse=True)]
    eventually(listed, newest_first)
    for request_id, g in records.items():
        row = page.locator(f"tr[data-request-id='{request_id}']")
        assert row.locator("[data-field=cost]").inner_text() == usd(g.cost_micro_usd)
        assert (
            row.locator("[data-field=tokens]")
            .inner_text()
            .startswith(f"{g.tokens_prompt} / {g.tokens_completion}")
        )
        assert g.status in row.inner_text().lower()
    failed = records[ids[-1]]
    assert (failed.status, failed.error_code, failed.cost_micro_usd) == ("failed", "insufficient_credits", 0)

    def filtered(**choices: str) -> set[str]:
        page.goto(f"{site}/activity/")
        for name, value in choices.items():
            page.select_option(f"select[name={name}]", value)
        page.click("button:has-text('Apply')")
        page.wait_for_load_state()
        rows = page.eval_on_selector_all("tr[data-request-id]", "rows => rows.map(r => r.dataset.requestId)")
        return set(rows)

    second_key = failed.api_key
    assert filtered(key=str(second_key.pk)) == {ids[-1]}
    assert filtered(status="failed") == {ids[-1], chat_refusal.request_id}
    assert filtered(source="chat") == {chat_refusal.request_id}
    assert filtered(model=FREE) == {ids[2], ids[3]}
    assert filtered(format="responses") == {ids[1]}
    assert filtered(model=PRICED, status="completed") == {ids[0], ids[1]}

    # The detail page shows what /api/v1/generation answers, field for field.
    page.goto(f"{site}/activity/")
    page.click(f"tr[data-request-id='{ids[1]}'] a")
    page.wait_for_url(re.compile(rf"/activity/{ids[1]}/$"))
    api = httpx.get(
        f"{site}/api/v1/generation", params={"id": ids[1]}, headers={"Authorization": f"Bearer {main}"}
    ).json()["data"]
    shown = dict(
        page.eval_on_selector_all(
            "[data-testid=generation-fields] td[data-field]",
            "cells => cells.map(c => [c.dataset.field, c.textContent])",
        )
    )
    assert shown == {
        name: value if isinstance(value, str) else json.dumps(value) for name, value in api.items()
    }
    page.goto(f"{site}/activity/{ids[-1]}/")
    assert "insufficient_credits" in page.inner_text("[data-testid=generation-error]")

    # --- Usage, once the rollup task ran on a real Celery worker ------------------------------------------
    roll_up_usage_task.delay()
    eventually(lambda: rolled_requests(workspace), len(listed_records), seconds=60)
    page.goto(f"{site}/usage/?range=48h&by=key")
    assert page.inner_text("[data-testid=total-requests]") == str(len(listed_records))
    assert page.inner_text("[data-testid=total-spend]") == usd(
        sum(g.cost_micro_usd for g in records.values())
    )
    table = page.inner_text("[data-testid=usage-table]")
    assert "main" in table and "second" in table
    assert page.locator("[data-testid=chart-requests] rect").count() >= 1

    # --- the overview: the balance to the micro-dollar ------------------------------------------------------
    page.goto(f"{site}/dashboard/")
    balance = account_for(workspace_id=workspace.pk).balance_micro_usd
    assert balance == 30_000 - sum(g.cost_micro_usd for g in records.values())
    assert page.inner_text("[data-testid=balance]") == usd(balance)
    assert money(page.inner_text("[data-testid=balance]")) * 1_000_000 == balance  # nothing rounded away
    quickstart = page.inner_text("[data-testid=quickstart]")
    assert f"{second_key.prefix}…" in quickstart and f"{site}/api/v1" in quickstart  # the newest key

    # --- Playground: an answer streams, with its cost; a long one is stopped and billed for what came -------
    page.goto(f"{site}/playground/")
    page.select_option("#pg-model", PRICED)
    page.select_option("#pg-format", "responses")
    page.fill("#pg-message", "Hello there")
    page.click("#pg-send")
    stats = page.locator("[data-testid=answer-stats]").last
    stats.locator("a").wait_for()  # the figures arrived
    assert (
        "Hello from the HyperInfer sandbox"
        in page.locator(".transcript li.assistant .text").last.inner_text()
    )
    answered = Generation.objects.filter(workspace=workspace, source="chat").latest("created_at")
    assert (answered.status, answered.ingress_format, answered.api_key_id) == ("completed", "responses", None)
    assert stats.get_attribute("data-cost-micro-usd") == str(answered.cost_micro_usd) != "0"
    assert f"cost {usd(answered.cost_micro_usd)}" in stats.inner_text()
    assert f"first token after {answered.ttft_ms} ms" in stats.inner_text()

    page.select_option("#pg-format", "chat_completions")
    page.fill("#pg-max-tokens", "2000")
    page.fill("#pg-message", "Tell me a long story")
    page.click("#pg-send")
    answer = page.locator(".transcript li.assistant .text").last
    eventually(lambda: len(answer.inner_text().split(" ")) > 20, True)  # streaming, not finished
    page.click("#pg-stop")
    stopped = page.locator("[data-testid=answer-stats]").last
    stopped.locator("a").wait_for()
    assert stopped.get_attribute("data-status") == "cancelled"
    cancelled = Generation.objects.filter(workspace=workspace, source="chat").latest("created_at")
    received = len(answer.inner_text().split(" "))
    assert cancelled.status == "cancelled" and 20 < cancelled.tokens_completion < 400
    assert cancelled.tokens_completion >= received  # billed for what was produced, at least what came
    assert cancelled.cost_micro_usd > 0

    # --- the e-mail verified through the link in the outbox, and only then the grant ------------------------
    spent_before = account_for(workspace_id=workspace.pk).balance_micro_usd
    page.goto(f"{site}/dashboard/")
    assert page.inner_text("[data-testid=balance]") == usd(spent_before)
    verification = next(m for m in reversed(mail.outbox) if m.to == [email] and "/verify-email/" in m.body)
    page.goto(re.search(r"(http://\S+/verify-email/\S+/)", verification.body).group(1))
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert "E-mail address verified" in page.inner_text("main")
    grant = settings.SIGNUP_GRANT_MICRO_USD
    assert grant > 0 and page.inner_text("[data-testid=balance]") == usd(spent_before + grant)
    assert page.locator("[data-testid=verify-banner]").count() == 0

    # --- a colleague invited by e-mail signs up through the link and lands in the workspace as admin ------
    page.goto(f"{site}/members/")
    page.fill("input[name=email]", "colleague@example.com")
    page.select_option("select[name=role]", "admin")
    page.click("button:has-text('Send invitation')")
    assert "colleague@example.com" in page.inner_text("[data-testid=invitations]")
    invitation = next(m for m in reversed(mail.outbox) if m.to == ["colleague@example.com"])
    invite_link = re.search(r"(http://\S+/invitations/\S+/)", invitation.body).group(1)
    colleague = browser()
    colleague.goto(invite_link)
    colleague.click("text=Sign up as colleague@example.com")
    assert colleague.input_value("input[name=email]") == "colleague@example.com"
    colleague.fill("input[name=password]", "another long password")
    colleague.click("button[type=submit]")
    colleague.wait_for_url(invite_link)
    colleague.click("button:has-text('Accept and join')")
    colleague.wait_for_url(re.compile(r"/dashboard/$"))
    assert workspace.name in colleague.inner_text("h1")
    assert colleague.inner_text("[data-testid=balance]") == usd(spent_before + grant)  # the shared credits
    joined = Membership.objects.get(workspace=workspace, user__email="colleague@example.com")
    assert joined.role == "admin" and joined.user.email_verified  # the link proved the mailbox
    page.goto(f"{site}/members/")
    assert "colleague@example.com" in page.inner_text("[data-testid=members]")

    # --- keyboard: the first Tab reaches the skip link, visibly ---------------------------------------------
    page.goto(f"{site}/dashboard/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.locator(".skip-link").bounding_box()["y"] >= 0

    shoot_everywhere(
        browser, site,
        {
            "overview": "/dashboard/", "activity": "/activity/", "activity-detail": f"/activity/{ids[1]}/",
            "activity-failed": f"/activity/{ids[-1]}/", "playground": "/playground/", "keys": "/keys/",
            "usage": "/usage/?range=48h", "usage-by-key": "/usage/?range=7d&by=key", "members": "/members/",
            "credits": "/billing/",
        },
        page.context.storage_state(),
    )  # fmt: skip
