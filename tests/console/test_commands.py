import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from billing.models import CreditAccount, EntryKind, LedgerEntry
from console.models import ApiKey, User
from console.services.keys import api_key_authenticate
from tests.factories import make_user, make_workspace

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_createapikey_prints_a_working_key_for_a_workspace_found_by_owner_email():
    owner = make_user("ops@example.com")
    workspace = make_workspace(owner=owner)
    secret, note = run(
        "createapikey", "--workspace", "ops@example.com", "--name", "deploy", "--limit-usd", "5"
    )
    key = api_key_authenticate(secret=secret)
    assert key is not None and key.workspace == workspace and key.name == "deploy"
    assert key.limit_micro_usd == 5_000_000
    assert key.prefix in note and secret not in note


def test_createapikey_finds_workspaces_by_slug_and_refuses_unknown_ones():
    workspace = make_workspace(name="Acme Corp")
    secret, _ = run("createapikey", "--workspace", workspace.slug)
    assert api_key_authenticate(secret=secret).workspace == workspace
    with pytest.raises(CommandError, match="no workspace matches"):
        run("createapikey", "--workspace", "nope")
    with pytest.raises(CommandError, match="allowed_models"):
        run("createapikey", "--workspace", workspace.slug, "--model", "not/a-model")
    with pytest.raises(CommandError, match="at most 6 decimals"):
        run("createapikey", "--workspace", workspace.slug, "--limit-usd", "0.0000001")


def test_grantcredits_goes_through_the_ledger():
    workspace = make_workspace()
    out, _ = run("grantcredits", "--workspace", workspace.slug, "--usd", "12.345678", "--reason", "pilot")
    entry = LedgerEntry.objects.get(workspace=workspace)
    assert (entry.kind, entry.amount_micro_usd, entry.reason) == (EntryKind.GRANT, 12_345_678, "pilot")
    assert "balance now $12.345678" in out
    run("grantcredits", "--workspace", workspace.slug, "--usd", "-2.345678", "--reason", "clawback")
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == 10_000_000
    assert LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.ADJUSTMENT).count() == 1


@pytest.mark.parametrize(
    ("usd", "reason", "message"),
    [("abc", "x", "not a USD amount"), ("1", " ", "reason"), ("0", "x", "change")],
)
def test_grantcredits_refuses_bad_input(usd, reason, message):
    workspace = make_workspace()
    with pytest.raises(CommandError, match=message):
        run("grantcredits", "--workspace", workspace.slug, "--usd", usd, "--reason", reason)
    assert not LedgerEntry.objects.exists()


def test_demo_setup_gives_a_login_and_a_fresh_working_key_each_run(tmp_path):
    credentials = tmp_path / "demo-login.txt"
    first, _ = run("demo_setup", "--credentials-file", str(credentials))
    second, _ = run("demo_setup", "--credentials-file", str(credentials))
    password = credentials.read_text().strip()
    operator = User.objects.get(email="operator@hyperinfer.local")
    assert operator.is_superuser and operator.check_password(password)
    assert f"Password:   {password}" in first and f"Password:   {password}" in second
    old_key = first.split("API key:")[1].split()[0]
    new_key = second.split("API key:")[1].split()[0]
    assert api_key_authenticate(secret=old_key) is None  # the previous demo key was revoked
    assert api_key_authenticate(secret=new_key).workspace.memberships.filter(user=operator).exists()
    # The demo credits are granted once, not on every run.
    workspace = api_key_authenticate(secret=new_key).workspace
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == 10_000_000
    assert ApiKey.objects.filter(workspace=workspace).count() == 2


def test_management_commands_run_as_real_processes(tmp_path):
    """The operator's view: real processes against a real database file, exit codes included."""
    env = {"SQLITE_PATH": str(tmp_path / "ops.sqlite3"), "PATH": "/usr/bin:/bin"}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    subprocess.run(
        [*manage, "demo_setup", "--credentials-file", str(tmp_path / "login")],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    created = subprocess.run(
        [*manage, "createapikey", "--workspace", "operator@hyperinfer.local"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0 and created.stdout.strip().startswith("hi-")
    refused = subprocess.run(
        [*manage, "grantcredits", "--workspace", "ghost", "--usd", "1", "--reason", "x"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "no workspace matches 'ghost'" in refused.stderr
