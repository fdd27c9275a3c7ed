import pytest

from tests.catalog.test_pages_browser import chromium_path
from tests.gateway.conftest import gateway_url  # noqa: F401  (the gateway on uvicorn, for the console's tests)


@pytest.fixture
def page(live_server, stripe_double, monkeypatch):
    """A headless Chromium page (Playwright driving Debian's chromium) on the running site. The test fails if
    the page's Content-Security-Policy refused anything: every browser test is also a CSP test."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM reads are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page = context.new_page()
        page.set_default_timeout(20_000)

        def on_console(message) -> None:
            if "Content Security Policy" in message.text:
                refused.append(message.text)

        page.on("console", on_console)
        yield page
        browser.close()
    assert not refused, refused
