"""Invitations: owners and admins invite an e-mail address — with or without an account — to a workspace with
a role; the invited person follows the one-time link, signs up or logs in with that address, and accepts."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from console.errors import InvalidField, InvitationInvalid, NotPermitted
from console.models import Invitation, Membership, Role, User, Workspace
from console.services.accounts import email_verify
from console.services.secrets import secret_hash
from console.services.workspaces import membership_role, roles_grantable

INVITATION_TTL = timedelta(days=7)
_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True)
class IssuedInvitation:
    """An invitation as just created: the only moment its token exists outside the e-mail."""

    record: Invitation
    token: str


def _require_may_invite(*, workspace: Workspace, acting_user: User, role: str) -> None:
    grantable = roles_grantable(actor_role=membership_role(user=acting_user, workspace=workspace))
    if not grantable:
        raise NotPermitted("only an owner or admin of the workspace can invite people")
    if role not in grantable:
        raise NotPermitted("only an owner can invite an owner")


@transaction.atomic
def invitation_create(
    *, workspace: Workspace, email: str, role: str, acting_user: User, site_url: str = ""
) -> IssuedInvitation:
    """Invite `email` with `role`; a pending invitation to the same address is replaced. The e-mail with the
    link goes once the transaction commits."""
    email = User.objects.normalize_email(email.strip()).lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidField("email", "enter a valid e-mail address") from None
    if role not in Role.values:
        raise InvalidField("role", f"must be one of {', '.join(Role.values)}")
    _require_may_invite(workspace=workspace, acting_user=acting_user, role=role)
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise InvalidField("email", f"{email} is a member of {workspace.name} already")
    now = timezone.now()
    _pending(workspace=workspace, email=email).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=secret_hash(token),
        invited_by=acting_user,
        expires_at=now + INVITATION_TTL,
    )
    transaction.on_commit(lambda: _email(invitation=invitation, token=token, site_url=site_url))
    return IssuedInvitation(record=invitation, token=token)


def _pending(*, workspace: Workspace, email: str) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        workspace=workspace, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    )


def invitation_link(*, token: str, site_url: str = "") -> str:
    return (site_url or settings.SITE_URL).rstrip("/") + reverse("console:invitation", args=[token])


def _email(*, invitation: Invitation, token: str, site_url: str) -> None:
    context = {
        "invitation": invitation,
        "inviter": invitation.invited_by.email if invitation.invited_by else "An operator",
        "link": invitation_link(token=token, site_url=site_url),
        "days": INVITATION_TTL.days,
    }
    body = render_to_string("console/email/invitation.txt", context)
    subject = f"You are invited to {invitation.workspace.name} on HyperInfer"
    send_mail(subject, body, None, [invitation.email])


def invitations_pending(*, workspace: Workspace) -> QuerySet[Invitation]:
    """Invitations that can still be accepted, newest first."""
    waiting = Invitation.objects.filter(workspace=workspace, expires_at__gt=timezone.now())
    return waiting.filter(accepted_at__isnull=True, revoked_at__isnull=True).select_related("invited_by")


def invitation_revoke(*, invitation: Invitation, acting_user: User) -> None:
    """Owners revoke any invitation, admins those they could have sent (not an owner's)."""
    _require_may_invite(workspace=invitation.workspace, acting_user=acting_user, role=invitation.role)
    Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True, accepted_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def invitation_find(*, token: str) -> Invitation:
    """The invitation this link is for, if it can still be accepted. Raises InvitationInvalid saying why."""
    found = Invitation.objects.filter(token_hash=secret_hash(token))
    invitation = found.select_related("workspace", "invited_by").first()
    if invitation is None:
        raise InvitationInvalid("This invitation link is not valid: check that it was copied whole.")
    if invitation.revoked_at is not None:
        raise InvitationInvalid("This invitation was withdrawn. Ask for a new one.")
    if invitation.accepted_at is not None:
        raise InvitationInvalid("This invitation has been accepted already.")
    if invitation.expires_at <= timezone.now():
        raise InvitationInvalid("This invitation has expired. Ask for a new one.")
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Join the workspace with the invited role (a member already keeps the higher of the two roles). The
    link reached the invited mailbox, so accepting also verifies that address."""
    invitation = invitation_find(token=token)
    invitation = Invitation.objects.select_for_update().select_related("workspace").get(pk=invitation.pk)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:  # a concurrent accept won
        raise InvitationInvalid("This invitation has been used or withdrawn.")
    if user.email.lower() != invitation.email.lower():
        raise NotPermitted(
            f"This invitation was sent to {invitation.email}; log in with that address to accept it."
        )
    membership, created = Membership.objects.get_or_create(
        workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
    )
    if not created and _RANK[Role(invitation.role)] > _RANK[Role(membership.role)]:
        membership.role = invitation.role
        membership.save(update_fields=["role"])
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    email_verify(user=user)
    return membership
