"""The sign-up grant waits for the e-mail address to be verified through a one-time link: until then a new
workspace has nothing to spend (its keys get insufficient_credits), after it the grant, exactly once."""

import io
import re
import threading

import httpx
import pytest
from django.core import mail
from django.db import connection
from django.test import override_settings

from billing.models import EntryKind, LedgerEntry
from billing.selectors import account_for
from console.models import User
from console.services.accounts import email_verify, personal_workspace, user_signup, verification_link
from console.services.keys import api_key_create
from tests.factories import make_user

pytestmark = pytest.mark.django_db
GRANT = 1_000_000


def sign_up(capture, email="new@example.com"):
    with capture(execute=True):
        return user_signup(email=email, password="a long enough password", site_url="http://testserver")


def link_path(body: str) -> str:
    return re.search(r"http://testserver(/verify-email/\S+/)", body).group(1)


@override_settings(SIGNUP_GRANT_MICRO_USD=GRANT)
def test_the_link_verifies_once_and_credits_the_grant_once(client, django_capture_on_commit_callbacks):
    user, workspace = sign_up(django_capture_on_commit_callbacks)
    assert account_for(workspace_id=workspace.pk).balance_micro_usd == 0
    message = mail.outbox[-1]
    assert message.to == ["new@example.com"] and "$1.00" in message.body
    path = link_path(message.body)
    assert client.get(path).status_code == 302
    user.refresh_from_db()
    assert user.email_verified and account_for(workspace_id=workspace.pk).balance_micro_usd == GRANT
    assert client.get(path).status_code == 410  # one-time: the verification changed what the token hashes
    assert email_verify(user=user) is False
    assert LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.GRANT).count() == 1


def test_a_tampered_link_verifies_nothing(client, django_capture_on_commit_callbacks):
    user, _ = sign_up(django_capture_on_commit_callbacks)
    path = link_path(mail.outbox[-1].body)
    assert client.get(path[:-3] + "xx/").status_code == 410
    assert client.get("/verify-email/!!/abc/").status_code == 410
    user.refresh_from_db()
    assert not user.email_verified


def test_an_unverified_user_sees_the_banner_and_can_have_the_link_sent_again(
    client, django_capture_on_commit_callbacks
):
    user, _ = sign_up(django_capture_on_commit_callbacks)
    client.force_login(user)
    assert 'data-testid="verify-banner"' in client.get("/dashboard/").content.decode()
    sent = len(mail.outbox)
    for _ in range(5):
        client.post("/verify-email/resend/")
    assert len(mail.outbox) == sent + 3  # then throttled
    assert link_path(mail.outbox[-1].body) != ""
    email_verify(user=user)
    assert 'data-testid="verify-banner"' not in client.get("/dashboard/").content.decode()


@override_settings(SIGNUP_GRANT_MICRO_USD=GRANT)
def test_accounts_from_before_verification_count_as_verified():
    # The migration marks them so; the factories' users stand in for them here.
    assert make_user().email_verified and not make_user(verified=False).email_verified
    assert User.objects.create_superuser("ops@example.com", "a long enough password").email_verified


@override_settings(SIGNUP_GRANT_MICRO_USD=GRANT)
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_once_credit_the_grant_once():
    user, workspace = user_signup(email="twice@example.com", password="a long enough password")
    start = threading.Barrier(2)
    results: list[bool] = []

    def click() -> None:
        start.wait()
        try:
            results.append(email_verify(user=User.objects.get(pk=user.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, True]
    assert account_for(workspace_id=workspace.pk).balance_micro_usd == GRANT


@override_settings(SIGNUP_GRANT_MICRO_USD=GRANT)
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_unverified_workspaces_key_gets_insufficient_credits_until_the_address_is_verified(gateway_url):
    user, workspace = user_signup(email="keys@example.com", password="a long enough password")
    secret = api_key_create(workspace=workspace, name="k", created_by=user).secret
    body = {
        "model": "hyperinfer/sandbox-pro",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
    }
    headers = {"Authorization": f"Bearer {secret}"}
    refused = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_credits"
    assert email_verify(user=user)
    assert personal_workspace(user=user) == workspace
    served = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert served.status_code == 200


def test_links_point_at_the_site_the_person_used():
    user = make_user(verified=False)
    assert verification_link(user=user, site_url="https://hi.example/").startswith(
        "https://hi.example/verify-email/"
    )


def test_demo_setup_leaves_the_demo_operator_verified(tmp_path):
    from django.core.management import call_command

    from console.management.commands.demo_setup import DEMO_EMAIL

    make_user(DEMO_EMAIL, verified=False)  # e.g. the address was first signed up through the form
    call_command("demo_setup", "--credentials-file", str(tmp_path / "login"), stdout=io.StringIO())
    assert User.objects.get(email=DEMO_EMAIL).email_verified
