"""Invitations: owners and admins invite an address with a role; the link works once, for its address, until
it expires or is withdrawn; an invitee without an account signs up through it and lands in the workspace."""

import datetime
import re

import pytest
from django.core import mail
from django.utils import timezone

from console.errors import InvalidField, InvitationInvalid, NotPermitted
from console.models import Invitation, Membership, Role
from console.selectors import SESSION_WORKSPACE_KEY
from console.services.invitations import invitation_accept, invitation_create, invitation_revoke
from console.services.secrets import secret_hash
from console.services.workspaces import membership_add, workspace_create
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(django_capture_on_commit_callbacks):
    owner, admin, member = make_user(), make_user(), make_user()
    workspace = workspace_create(owner=owner, name="Team")
    membership_add(workspace=workspace, user=admin, role=Role.ADMIN, acting_user=owner)
    membership_add(workspace=workspace, user=member, acting_user=owner)
    return workspace, owner, admin, member


def invite(workspace, email, role, by, capture):
    with capture(execute=True):
        return invitation_create(workspace=workspace, email=email, role=role, acting_user=by)


def test_the_email_carries_a_one_time_link_and_only_its_hash_is_stored(
    team, django_capture_on_commit_callbacks
):
    workspace, owner, _, _ = team
    issued = invite(
        workspace, "New.Person@Example.com", Role.ADMIN, owner, django_capture_on_commit_callbacks
    )
    message = mail.outbox[-1]
    assert message.to == ["new.person@example.com"] and "Team" in message.subject
    assert f"/invitations/{issued.token}/" in message.body and "as admin" in message.body
    stored = Invitation.objects.get()
    assert stored.token_hash == secret_hash(issued.token) and issued.token not in str(stored.__dict__)


def test_accepting_joins_with_the_role_once_and_verifies_the_address(
    team, django_capture_on_commit_callbacks
):
    workspace, _, admin, _ = team
    issued = invite(workspace, "joiner@example.com", Role.ADMIN, admin, django_capture_on_commit_callbacks)
    joiner = make_user("joiner@example.com", verified=False)
    membership = invitation_accept(token=issued.token, user=joiner)
    assert (membership.workspace, membership.role) == (workspace, Role.ADMIN)
    joiner.refresh_from_db()
    assert joiner.email_verified
    with pytest.raises(InvitationInvalid, match="accepted already"):
        invitation_accept(token=issued.token, user=joiner)


def test_only_the_invited_address_can_accept(team, django_capture_on_commit_callbacks):
    workspace, owner, _, _ = team
    issued = invite(workspace, "right@example.com", Role.MEMBER, owner, django_capture_on_commit_callbacks)
    with pytest.raises(NotPermitted, match=r"sent to right@example\.com"):
        invitation_accept(token=issued.token, user=make_user("wrong@example.com"))
    assert not Membership.objects.filter(workspace=workspace, user__email="wrong@example.com").exists()


def test_expired_withdrawn_and_unknown_links_say_why(team, django_capture_on_commit_callbacks):
    workspace, owner, _, _ = team
    user = make_user("late@example.com")
    late = invite(workspace, "late@example.com", Role.MEMBER, owner, django_capture_on_commit_callbacks)
    Invitation.objects.filter(pk=late.record.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    with pytest.raises(InvitationInvalid, match="expired"):
        invitation_accept(token=late.token, user=user)
    withdrawn = invite(workspace, "late@example.com", Role.MEMBER, owner, django_capture_on_commit_callbacks)
    invitation_revoke(invitation=withdrawn.record, acting_user=owner)
    with pytest.raises(InvitationInvalid, match="withdrawn"):
        invitation_accept(token=withdrawn.token, user=user)
    with pytest.raises(InvitationInvalid, match="not valid"):
        invitation_accept(token="made-up", user=user)


def test_a_new_invitation_to_the_same_address_replaces_the_pending_one(
    team, django_capture_on_commit_callbacks
):
    workspace, owner, _, _ = team
    first = invite(workspace, "twice@example.com", Role.MEMBER, owner, django_capture_on_commit_callbacks)
    second = invite(workspace, "twice@example.com", Role.ADMIN, owner, django_capture_on_commit_callbacks)
    first.record.refresh_from_db()
    assert first.record.revoked_at is not None and second.record.revoked_at is None


def test_who_may_invite_whom(team, django_capture_on_commit_callbacks):
    workspace, owner, admin, member = team
    with pytest.raises(NotPermitted):
        invitation_create(workspace=workspace, email="a@example.com", role=Role.MEMBER, acting_user=member)
    with pytest.raises(NotPermitted, match="only an owner can invite an owner"):
        invitation_create(workspace=workspace, email="a@example.com", role=Role.OWNER, acting_user=admin)
    with pytest.raises(InvalidField) as taken:
        invitation_create(workspace=workspace, email=member.email.upper(), role=Role.ADMIN, acting_user=owner)
    assert taken.value.field == "email"
    with pytest.raises(InvalidField) as bad:
        invitation_create(workspace=workspace, email="not an address", role=Role.ADMIN, acting_user=owner)
    assert bad.value.field == "email"
    owners_invitation = invite(
        workspace, "boss@example.com", Role.OWNER, owner, django_capture_on_commit_callbacks
    )
    with pytest.raises(NotPermitted):  # an admin cannot withdraw what only an owner could send
        invitation_revoke(invitation=owners_invitation.record, acting_user=admin)


# --- the pages ----------------------------------------------------------------------------------------------
def test_members_see_the_team_but_no_controls(client, team):
    _, _, _, member = team
    client.force_login(member)
    body = client.get("/members/").content.decode()
    assert body.count('data-email="') == 3
    assert "Send invitation" not in body and "/role/" not in body and "Remove</button>" not in body
    assert "Leave</button>" in body  # their own row


def test_admins_get_controls_for_admins_and_members_only(client, team):
    _, owner, admin, member = team
    client.force_login(admin)
    body = client.get("/members/").content.decode()
    owner_row = re.search(rf'data-email="{owner.email}">.*?</tr>', body, re.S).group(0)
    member_row = re.search(rf'data-email="{member.email}">.*?</tr>', body, re.S).group(0)
    assert "<select" not in owner_row and "Remove" not in owner_row
    assert "<select" in member_row and 'value="owner"' not in member_row and "Remove" in member_row
    response = client.post(f"/members/{Membership.objects.get(user=owner).pk}/role/", {"role": "member"})
    assert response.status_code == 302
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_an_invitee_signs_up_through_the_link_and_lands_in_the_workspace(
    client, team, django_capture_on_commit_callbacks
):
    workspace, owner, _, _ = team
    issued = invite(workspace, "fresh@example.com", Role.ADMIN, owner, django_capture_on_commit_callbacks)
    link = re.search(r"http://\S+(/invitations/\S+/)", mail.outbox[-1].body).group(1)
    landing = client.get(link).content.decode()
    assert "Sign up as fresh@example.com" in landing
    signup_url = re.search(r'href="(/signup/\?[^"]+)"', landing).group(1).replace("&amp;", "&")
    form = client.get(signup_url).content.decode()
    assert 'value="fresh@example.com"' in form and f'value="{link}"' in form
    with django_capture_on_commit_callbacks(execute=True):
        signed_up = client.post(
            "/signup/", {"email": "fresh@example.com", "password": "a long enough password", "next": link}
        )
    assert signed_up["Location"] == link
    accepted = client.post(link)
    assert accepted["Location"] == "/dashboard/"
    membership = Membership.objects.get(workspace=workspace, user__email="fresh@example.com")
    assert membership.role == Role.ADMIN and client.session[SESSION_WORKSPACE_KEY] == str(workspace.pk)
    assert issued.record.__class__.objects.get(pk=issued.record.pk).accepted_by == membership.user
    assert client.get(link).status_code == 410  # used


def test_the_landing_page_tells_another_account_to_switch(client, team, django_capture_on_commit_callbacks):
    workspace, owner, _, member = team
    issued = invite(workspace, "someone@example.com", Role.MEMBER, owner, django_capture_on_commit_callbacks)
    client.force_login(member)
    body = client.get(f"/invitations/{issued.token}/").content.decode()
    assert f"You are logged in as {member.email}" in body and "Accept and join" not in body
    client.post(f"/invitations/{issued.token}/")
    assert not Membership.objects.filter(workspace=workspace, user__email="someone@example.com").exists()


def test_a_next_off_the_site_is_ignored_after_sign_up(client):
    response = client.post(
        "/signup/",
        {"email": "safe@example.com", "password": "a long enough password", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/keys/"


def test_an_invitee_with_an_account_logs_in_through_the_link_and_accepts(
    client, team, django_capture_on_commit_callbacks
):
    workspace, owner, _, _ = team
    invitee = make_user("known@example.com", password="known-person-password")
    issued = invite(workspace, "KNOWN@example.com", Role.ADMIN, owner, django_capture_on_commit_callbacks)
    link = f"/invitations/{issued.token}/"
    landing = client.get(link).content.decode()
    assert "Log in as known@example.com" in landing and "Sign up as" not in landing
    login_url = re.search(r'href="(/login/\?[^"]+)"', landing).group(1)
    assert client.get(login_url).status_code == 200
    logged_in = client.post(
        login_url, {"username": "known@example.com", "password": "known-person-password", "next": link}
    )
    assert logged_in["Location"] == link
    assert "Accept and join" in client.get(link).content.decode()
    assert client.post(link)["Location"] == "/dashboard/"
    membership = Membership.objects.get(workspace=workspace, user=invitee)
    assert membership.role == Role.ADMIN and client.session[SESSION_WORKSPACE_KEY] == str(workspace.pk)


def test_expired_and_withdrawn_links_show_a_page_saying_so(client, team, django_capture_on_commit_callbacks):
    workspace, owner, _, _ = team
    late = invite(workspace, "late@example.com", Role.MEMBER, owner, django_capture_on_commit_callbacks)
    Invitation.objects.filter(pk=late.record.pk).update(expires_at=timezone.now())
    expired = client.get(f"/invitations/{late.token}/")
    assert expired.status_code == 410 and "has expired" in expired.content.decode()
    withdrawn = invite(workspace, "gone@example.com", Role.MEMBER, owner, django_capture_on_commit_callbacks)
    client.force_login(owner)
    client.post(f"/members/invitations/{withdrawn.record.pk}/withdraw/")
    client.logout()
    page = client.get(f"/invitations/{withdrawn.token}/")
    assert page.status_code == 410 and "was withdrawn" in page.content.decode()
    unknown = client.get("/invitations/no-such-token/")
    assert unknown.status_code == 410 and "not valid" in unknown.content.decode()
