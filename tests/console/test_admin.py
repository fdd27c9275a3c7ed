import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from billing.models import CreditAccount, EntryKind, LedgerEntry
from console.models import User
from console.services.keys import api_key_create
from tests.factories import make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = User.objects.create_superuser("root@example.com", "a-long-test-password")
    client.force_login(user)
    return client, user


def test_every_model_is_in_the_admin_with_search_and_filters(operator):
    client, _ = operator
    make_workspace(credits_micro_usd=1_000_000)
    for app_label in ("console", "billing", "catalog", "gateway"):
        for model in apps.get_app_config(app_label).get_models():
            model_admin = admin.site._registry.get(model)
            assert model_admin is not None, f"{model.__name__} is not in the admin"
            assert model_admin.search_fields, f"{model.__name__} has no search"
            url = f"/admin/{app_label}/{model._meta.model_name}/?q=a"
            assert client.get(url).status_code == 200, url


def test_a_credit_adjustment_needs_a_reason_and_goes_through_the_ledger(operator):
    client, user = operator
    workspace = make_workspace(credits_micro_usd=1_000_000)
    url = "/admin/console/workspace/"
    form = {"action": "adjust_workspace_credits", ACTION_CHECKBOX_NAME: [str(workspace.pk)]}

    page = client.post(url, form)
    assert "Apply adjustment" in page.content.decode()
    refused = client.post(url, {**form, "apply": "1", "amount_usd": "2.5", "reason": ""})
    assert "This field is required" in refused.content.decode()
    assert LedgerEntry.objects.filter(kind=EntryKind.ADJUSTMENT).count() == 0

    client.post(url, {**form, "apply": "1", "amount_usd": "-0.25", "reason": "goodwill reversal"})
    entry = LedgerEntry.objects.get(kind=EntryKind.ADJUSTMENT)
    assert (entry.amount_micro_usd, entry.reason, entry.created_by) == (-250_000, "goodwill reversal", user)
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == 750_000


def test_balances_cannot_be_edited_directly(operator):
    client, _ = operator
    workspace = make_workspace(credits_micro_usd=1_000_000)
    client.post(f"/admin/billing/creditaccount/{workspace.pk}/change/", {"balance_micro_usd": "99999999"})
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == 1_000_000
    assert client.get("/admin/billing/ledgerentry/add/").status_code == 403


def test_lock_and_unlock_workspaces(operator):
    client, _ = operator
    workspace = make_workspace()
    selected = {ACTION_CHECKBOX_NAME: [str(workspace.pk)]}
    client.post(
        "/admin/console/workspace/",
        {"action": "lock_workspaces", "apply": "1", "reason": "fraud", **selected},
    )
    workspace.refresh_from_db()
    assert workspace.is_locked and workspace.locked_reason == "fraud"
    client.post("/admin/console/workspace/", {"action": "unlock_workspaces", **selected})
    workspace.refresh_from_db()
    assert not workspace.is_locked


def test_operators_revoke_keys_and_never_see_hashes(operator):
    client, _ = operator
    key = api_key_create(workspace=make_workspace(), name="leaked", created_by=None).record
    page = client.get(f"/admin/console/apikey/{key.pk}/change/").content.decode()
    assert key.secret_hash not in page
    client.post("/admin/console/apikey/", {"action": "revoke_keys", ACTION_CHECKBOX_NAME: [str(key.pk)]})
    key.refresh_from_db()
    assert key.revoked_at is not None
