import re

import httpx
import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import override_settings

from console.models import ApiKey, Invitation, Membership, Role, Workspace
from console.services.keys import api_key_create
from tests.console.test_keys import every_stored_value
from tests.factories import make_user, make_workspace

PASSWORD = "a-long-test-password"


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@override_settings(SIGNUP_GRANT_MICRO_USD=1_000_000)
@pytest.mark.django_db(transaction=True)
def test_a_visitor_signs_up_creates_a_key_and_never_sees_the_secret_again(live_server):
    with httpx.Client(base_url=live_server.url, follow_redirects=True, timeout=10) as browser:
        front = browser.get("/")
        assert front.status_code == 200 and "Create your HyperInfer account" in front.text

        signed_up = browser.post(
            "/",
            data={
                "email": "grace@example.com",
                "name": "Grace",
                "password": PASSWORD,
                "csrfmiddlewaretoken": csrf_token(front.text),
            },
            headers={"Referer": live_server.url + "/"},
        )
        assert signed_up.url.path == "/keys/"
        assert "Grace&#x27;s workspace is ready." in signed_up.text
        assert "to receive $1.00 of credits" in signed_up.text
        assert re.search(r'data-testid="balance">\$0\.00<', browser.get("/dashboard/").text)

        link = re.search(r"(http://\S+/verify-email/\S+/)", mail.outbox[-1].body).group(1)
        assert link.startswith(live_server.url)  # the site the person signed up on
        browser.get(link)
        overview = browser.get("/dashboard/")
        assert re.search(r'data-testid="balance">\$1\.00<', overview.text)
        assert "Sign-up grant" in overview.text

        created = browser.post(
            "/keys/",
            data={"name": "laptop", "limit_reset": "none", "csrfmiddlewaretoken": csrf_token(signed_up.text)},
            headers={"Referer": live_server.url + "/keys/"},
        )
        secret = re.search(r'data-testid="secret">(hi-[A-Za-z0-9]+)<', created.text).group(1)
        key = ApiKey.objects.get(name="laptop")
        assert secret.startswith(key.prefix)

        listing = browser.get("/keys/")
        assert f"{key.prefix}…" in listing.text
        assert secret not in listing.text
        assert secret not in browser.get("/dashboard/").text

    assert secret not in every_stored_value()
    for session in Session.objects.all():
        assert secret not in repr(session.get_decoded())


@pytest.fixture
def owner_client(client):
    owner = make_user("owner@example.com", PASSWORD)
    workspace = make_workspace(owner=owner, credits_micro_usd=2_000_000, name="Acme")
    client.force_login(owner)
    return client, owner, workspace


@pytest.mark.django_db
def test_pages_need_a_login(client):
    for path in ("/dashboard/", "/keys/", "/billing/", "/members/"):
        response = client.get(path)
        assert response.status_code == 302 and response.url.startswith("/login/")


@pytest.mark.django_db
def test_log_in_with_email_and_password(client):
    make_user("ada@example.com", PASSWORD)
    page = client.post("/login/", {"username": "ada@example.com", "password": "wrong"})
    assert page.status_code == 200 and "Please enter a correct" in page.content.decode()
    response = client.post("/login/", {"username": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response.url == "/dashboard/"


@pytest.mark.django_db
def test_a_key_is_revoked_from_the_list(owner_client):
    client, owner, workspace = owner_client
    key = api_key_create(workspace=workspace, name="ci", created_by=owner).record
    response = client.post(f"/keys/{key.pk}/revoke/", follow=True)
    assert "Revoked ci" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None


@pytest.mark.django_db
def test_another_workspaces_key_cannot_be_revoked(owner_client):
    client, _, _ = owner_client
    foreign = api_key_create(workspace=make_workspace(), name="theirs", created_by=None).record
    assert client.post(f"/keys/{foreign.pk}/revoke/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


@pytest.mark.django_db
def test_key_form_errors_name_the_field(owner_client):
    client, _, _ = owner_client
    response = client.post("/keys/", {"name": "", "limit_reset": "none", "rate_limit_rpm": "0"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "This field is required." in body and "greater than or equal to 1" in body
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_the_billing_page_lists_the_ledger(owner_client):
    client, _, _ = owner_client
    body = client.get("/billing/").content.decode()
    assert "$2.00" in body and "test credits" in body


@pytest.mark.django_db
def test_create_and_switch_workspaces(owner_client):
    client, owner, acme = owner_client
    client.post("/workspaces/new/", {"name": "Side project"})
    side = Workspace.objects.get(name="Side project")
    assert Membership.objects.get(workspace=side, user=owner).role == Role.OWNER
    assert "Side project" in client.get("/dashboard/").content.decode().split("<h1>")[1]

    client.post("/workspaces/switch/", {"workspace": str(acme.pk)})
    assert client.get("/dashboard/").content.decode().split("<h1>")[1].startswith("Acme")
    # A workspace the user is not a member of cannot be switched to.
    client.post("/workspaces/switch/", {"workspace": str(make_workspace(name="Foreign").pk)})
    assert client.get("/dashboard/").content.decode().split("<h1>")[1].startswith("Acme")


@pytest.mark.django_db
def test_owners_invite_people_by_email(owner_client, django_capture_on_commit_callbacks):
    client, _, workspace = owner_client
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail goes once the invitation is stored
        client.post("/members/", {"email": "Colleague@Example.com", "role": "admin"})
    invitation = Invitation.objects.get(workspace=workspace)
    assert (invitation.email, invitation.role) == ("colleague@example.com", Role.ADMIN)
    assert "/invitations/" in mail.outbox[-1].body and mail.outbox[-1].to == ["colleague@example.com"]
    response = client.post("/members/", {"email": "owner@example.com", "role": "member"})
    assert "is a member of Acme already" in response.content.decode()


@pytest.mark.django_db
def test_a_key_is_edited_from_the_dashboard(owner_client, shipped_catalog):
    client, owner, workspace = owner_client
    key = api_key_create(workspace=workspace, name="ci", created_by=owner).record
    page = client.get(f"/keys/{key.pk}/edit/").content.decode()
    assert 'value="ci"' in page and "expires_in_days" not in page
    client.post(
        f"/keys/{key.pk}/edit/",
        {
            "name": "ci-runner",
            "limit_usd": "2.5",
            "limit_reset": "weekly",
            "allowed_models": ["hyperinfer/sandbox"],
        },
    )
    key.refresh_from_db()
    assert (key.name, key.limit_micro_usd, key.limit_reset) == ("ci-runner", 2_500_000, "weekly")
    assert key.allowed_models == ["hyperinfer/sandbox"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/path", "javascript:alert(1)", "http:///evil.example"],
)
def test_switching_workspaces_never_redirects_off_the_site(owner_client, next_url):
    client, _, acme = owner_client
    answer = client.post("/workspaces/switch/", {"workspace": str(acme.pk), "next": next_url})
    assert answer.status_code == 302 and answer["Location"] == "/dashboard/"
    back = client.post("/workspaces/switch/", {"workspace": str(acme.pk), "next": "/keys/?page=2"})
    assert back["Location"] == "/keys/?page=2"  # a page of this site is fine
