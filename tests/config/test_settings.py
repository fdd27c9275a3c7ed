"""Settings come from the environment; production refuses to start insecurely."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k3y-" + "x7Qp9vZr2L" * 6
GOOD_TOKEN = "internal-" + "a" * 40


def check(**env) -> subprocess.CompletedProcess:
    """`manage.py check` in a fresh process with exactly these variables."""
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"PATH": "/usr/bin:/bin", "SQLITE_PATH": ":memory:", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "insecure SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "insecure SECRET_KEY"),
        ({"SECRET_KEY": "django-insecure-" + "q" * 60}, "insecure SECRET_KEY"),
        ({"SECRET_KEY": GOOD_KEY, "DEBUG": "true"}, "DEBUG on"),
        ({"SECRET_KEY": GOOD_KEY, "DEBUG": "false"}, "INTERNAL_TOKEN"),
        ({"SECRET_KEY": GOOD_KEY, "INTERNAL_TOKEN": GOOD_TOKEN}, "EMAIL_BACKEND is"),  # the console's default
    ],
)
def test_production_refuses_to_start_insecurely(env, message):
    result = check(HYPERINFER_ENV="production", **env)
    assert result.returncode != 0
    assert message in result.stderr


PRODUCTION = {
    "HYPERINFER_ENV": "production",
    "SECRET_KEY": GOOD_KEY,
    "INTERNAL_TOKEN": GOOD_TOKEN,
    "ALLOWED_HOSTS": "api.example.com",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


def test_production_starts_with_a_strong_key_debug_off_and_a_real_mail_server():
    result = check(**PRODUCTION)
    assert result.returncode == 0, result.stderr


def test_production_pages_carry_hsts_and_the_security_headers():
    script = (
        "from django.test import Client; "
        "r = Client().get('/login/', secure=True, HTTP_HOST='api.example.com'); "
        "print(r.status_code, r.headers.get('Strict-Transport-Security'), r.headers.get('X-Frame-Options'), "
        "r.headers.get('Referrer-Policy'), r.headers.get('X-Content-Type-Options'))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
        env={"PATH": "/usr/bin:/bin", "SQLITE_PATH": ":memory:", **PRODUCTION},
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.split() == ["200", "max-age=31536000", "DENY", "same-origin", "nosniff"], (
        result.stderr
    )


LIVE_STRIPE = {"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}


def test_production_pages_carry_a_content_security_policy_without_inline_script():
    script = (
        "from django.test import Client; "
        "r = Client().get('/login/', secure=True, HTTP_HOST='api.example.com'); "
        "print(r.headers.get('Content-Security-Policy'))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
        env={"PATH": "/usr/bin:/bin", "SQLITE_PATH": ":memory:", **LIVE_STRIPE, **PRODUCTION},
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    policy = dict(part.strip().split(" ", 1) for part in result.stdout.strip().split(";"))
    assert policy["script-src"] == "'self' https://js.stripe.com", result.stderr
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"
    assert "'unsafe-inline'" not in policy["script-src"] + policy["style-src"]
    assert policy["connect-src"] == "'self' https://api.stripe.com"


def test_development_needs_no_variables_at_all():
    result = check()
    assert result.returncode == 0, result.stderr


def test_a_malformed_variable_is_named_in_the_error():
    result = check(DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG must be a boolean" in result.stderr
    result = check(SIGNUP_GRANT_USD="1.0000001")
    assert result.returncode != 0 and "SIGNUP_GRANT_USD" in result.stderr
    result = check(METER_WRITER="thread")
    assert result.returncode != 0 and "METER_WRITER must be server or process" in result.stderr


def test_every_model_change_has_its_migration():
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        env={"PATH": "/usr/bin:/bin", "SQLITE_PATH": ":memory:"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
