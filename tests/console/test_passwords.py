import re

import pytest
from django.core import mail

from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_a_forgotten_password_is_reset_through_an_emailed_one_time_link(client):
    user = make_user("ada@example.com", "the-old-password-1")
    response = client.post("/password/reset/", {"email": "ADA@example.com"})
    assert response.status_code == 302 and response.url == "/password/reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    link = re.search(r"http://testserver(/password/reset/\S+/)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "a-brand-new-password", "new_password2": "a-brand-new-password"}
    )
    assert done.status_code == 302 and done.url == "/password/reset/done/"
    user.refresh_from_db()
    assert user.check_password("a-brand-new-password")
    # The link works once.
    assert "invalid or was already used" in client.get(link, follow=True).content.decode()


def test_resetting_an_unknown_email_reveals_nothing(client):
    response = client.post("/password/reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302 and response.url == "/password/reset/sent/"
    assert mail.outbox == []


def test_a_signed_in_user_changes_their_password(client):
    user = make_user("bob@example.com", "the-old-password-1")
    client.force_login(user)
    refused = client.post(
        "/account/password/",
        {
            "old_password": "wrong",
            "new_password1": "a-brand-new-password",
            "new_password2": "a-brand-new-password",
        },
    )
    assert refused.status_code == 200
    client.post(
        "/account/password/",
        {
            "old_password": "the-old-password-1",
            "new_password1": "a-brand-new-password",
            "new_password2": "a-brand-new-password",
        },
    )
    user.refresh_from_db()
    assert user.check_password("a-brand-new-password")
