import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from billing.models import CreditAccount, EntryKind, LedgerEntry
from console.errors import EmailTaken, InvalidField, LastOwner, NotPermitted
from console.models import Membership, Role, User
from console.services.accounts import email_verify, user_signup
from console.services.workspaces import (
    membership_add,
    membership_remove,
    workspace_create,
    workspace_lock,
    workspace_unlock,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@override_settings(SIGNUP_GRANT_MICRO_USD=1_500_000)
def test_sign_up_creates_a_user_and_a_personal_workspace_and_the_grant_waits_for_verification():
    user, workspace = user_signup(email="Ada@Example.com", password="correct horse battery", name="Ada")
    assert user.email == "ada@example.com" and user.check_password("correct horse battery")
    assert workspace.is_personal and workspace.name == "Ada's workspace"
    assert Membership.objects.get(user=user, workspace=workspace).role == Role.OWNER
    assert not user.email_verified and not LedgerEntry.objects.filter(workspace=workspace).exists()
    assert email_verify(user=user) is True
    grant = LedgerEntry.objects.get(workspace=workspace)
    assert (grant.kind, grant.amount_micro_usd) == (EntryKind.GRANT, 1_500_000)
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == 1_500_000


def test_sign_up_refuses_a_taken_email_and_a_weak_password_and_leaves_nothing_behind():
    user_signup(email="ada@example.com", password="correct horse battery")
    with pytest.raises(EmailTaken):
        user_signup(email="ADA@example.com", password="another good password")
    with pytest.raises(ValidationError):
        user_signup(email="bob@example.com", password="123")
    assert not User.objects.filter(email="bob@example.com").exists()
    assert User.objects.count() == 1


def test_workspace_slugs_are_unique_even_for_the_same_name():
    owner = make_user()
    first = workspace_create(owner=owner, name="Acme")
    second = workspace_create(owner=owner, name="Acme")
    assert first.slug == "acme" and second.slug.startswith("acme-") and second.slug != first.slug


def test_only_owners_and_admins_manage_members_and_the_last_owner_stays():
    owner, admin, member = make_user(), make_user(), make_user()
    workspace = workspace_create(owner=owner, name="Team")
    membership_add(workspace=workspace, user=admin, role=Role.ADMIN, acting_user=owner)
    membership_add(workspace=workspace, user=member, acting_user=admin)
    with pytest.raises(NotPermitted):
        membership_add(workspace=workspace, user=make_user(), acting_user=member)
    with pytest.raises(NotPermitted):
        membership_add(workspace=workspace, user=member, role=Role.OWNER, acting_user=admin)
    with pytest.raises(LastOwner, match="owner"):
        membership_remove(workspace=workspace, user=owner, acting_user=owner)
    membership_remove(workspace=workspace, user=member, acting_user=member)  # leaving is always allowed
    assert set(workspace.memberships.values_list("user", flat=True)) == {owner.pk, admin.pk}


def test_locking_needs_a_reason_and_unlocking_clears_it():
    workspace = workspace_create(owner=make_user(), name="Suspicious")
    with pytest.raises(InvalidField, match="reason"):
        workspace_lock(workspace=workspace, reason="")
    workspace_lock(workspace=workspace, reason="chargeback")
    assert workspace.is_locked and workspace.locked_reason == "chargeback"
    workspace_unlock(workspace=workspace)
    assert not workspace.is_locked
