"""The dashboard's small behaviours in headless Chromium, under the production Content-Security-Policy (no
inline script): the workspace switcher submits on change, a key's Copy button copies it, revoking asks
first, the receipt prints. The `page` fixture fails any test whose page the policy refused something on."""

import pytest

from console.models import ApiKey, Membership
from console.services.workspaces import workspace_create
from tests.catalog.test_pages_browser import screenshot_dir
from tests.console.test_credits_browser import sign_up

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_behaviours_work_under_the_content_security_policy(live_server, page):
    response = page.goto(f"{live_server.url}/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    user = sign_up(page, live_server.url)
    page.fill("input[name=name]", "ci")
    page.click("button:has-text('Create key')")
    page.wait_for_selector("#secret")
    secret = page.inner_text("#secret")
    page.click("button[data-copy]")
    # A locator, not wait_for_function: a string predicate is eval, which the policy refuses.
    page.locator("button[data-copy]", has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret

    page.goto(f"{live_server.url}/keys/")
    page.once("dialog", lambda dialog: dialog.dismiss())  # "Revoke ci?" — no
    page.click("form[data-confirm] button")
    assert not ApiKey.objects.get(name="ci").is_revoked
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("form[data-confirm] button")
    assert ApiKey.objects.get(name="ci").is_revoked

    second = workspace_create(owner=user, name="Second team")
    page.goto(f"{live_server.url}/keys/")
    with page.expect_navigation():
        page.select_option("#workspace-switch", str(second.pk))
    assert page.locator("#workspace-switch").input_value() == str(second.pk)
    assert Membership.objects.filter(user=user).count() == 2


@pytest.mark.parametrize("width", [1280, 390])
def test_the_dashboard_fits_the_screen_without_sideways_scrolling(live_server, page, width):
    sign_up(page, live_server.url)
    page.set_viewport_size({"width": width, "height": 844})
    for path in ("/keys/", "/billing/add/", "/models/"):
        page.goto(live_server.url + path)
        name = path.strip("/").replace("/", "-")
        page.screenshot(path=str(screenshot_dir() / f"dashboard-{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
