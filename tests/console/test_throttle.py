"""Log-in and sign-up throttling: password guessing and credit farming stop at the limit, for a while."""

import pytest

from console.models import User
from console.services.throttle import FAILED_LOGINS, throttle_clear
from tests.factories import make_user

pytestmark = pytest.mark.django_db
PASSWORD = "the right password, long"


def log_in(client, email: str, password: str, address: str = "203.0.113.7"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=address)


def test_after_ten_wrong_passwords_even_the_right_one_is_refused_for_a_while(client):
    user = make_user(email="victim@example.com", password=PASSWORD)
    answers = [log_in(client, user.email, f"guess {n}").status_code for n in range(30)]
    assert answers[:10] == [200] * 10  # the form again, with its error
    assert set(answers[10:]) == {429}
    refused = log_in(client, user.email, PASSWORD)
    assert refused.status_code == 429 and "Too many failed log-ins" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # From elsewhere, the address is throttled all the same (per e-mail), and another account is not.
    assert log_in(client, user.email, PASSWORD, address="198.51.100.9").status_code == 429
    other = make_user(email="bystander@example.com", password=PASSWORD)
    assert log_in(client, other.email, PASSWORD, address="198.51.100.9").status_code == 302

    throttle_clear(limit=FAILED_LOGINS, who=["203.0.113.7", user.email])  # the window ended
    assert log_in(client, user.email, PASSWORD).status_code == 302


def test_a_network_signs_up_five_times_an_hour_at_most(client):
    statuses = []
    for n in range(7):
        client.logout()
        answer = client.post(
            "/signup/", {"email": f"farm{n}@example.com", "password": PASSWORD}, REMOTE_ADDR="203.0.113.50"
        )
        statuses.append(answer.status_code)
    assert statuses == [302] * 5 + [429] * 2
    assert User.objects.filter(email__startswith="farm").count() == 5
