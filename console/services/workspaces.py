"""Workspaces and their members."""

import secrets

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from billing.services import account_open
from console.errors import InvalidField, LastOwner, NotPermitted
from console.models import MANAGING_ROLES, Membership, Role, User, Workspace


def _unique_slug(name: str) -> str:
    base = slugify(name)[:40] or "workspace"
    slug = base
    while Workspace.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def workspace_create(*, owner: User, name: str, is_personal: bool = False) -> Workspace:
    name = name.strip()
    if not name:
        raise InvalidField("name", "a workspace needs a name")
    workspace = Workspace.objects.create(name=name, slug=_unique_slug(name), is_personal=is_personal)
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    account_open(workspace_id=workspace.id)
    return workspace


def workspace_lock(*, workspace: Workspace, reason: str) -> Workspace:
    """Refuse the workspace's API traffic (`workspace_locked`) until it is unlocked."""
    if not reason.strip():
        raise InvalidField("reason", "locking a workspace needs a reason")
    Workspace.objects.filter(pk=workspace.pk).update(locked_at=timezone.now(), locked_reason=reason.strip())
    workspace.refresh_from_db(fields=["locked_at", "locked_reason"])
    return workspace


def workspace_unlock(*, workspace: Workspace) -> Workspace:
    Workspace.objects.filter(pk=workspace.pk).update(locked_at=None, locked_reason="")
    workspace.refresh_from_db(fields=["locked_at", "locked_reason"])
    return workspace


def membership_role(*, user: User, workspace: Workspace) -> str | None:
    return Membership.objects.filter(user=user, workspace=workspace).values_list("role", flat=True).first()


def require_managing_role(*, user: User, workspace: Workspace) -> None:
    if membership_role(user=user, workspace=workspace) not in MANAGING_ROLES:
        raise NotPermitted("only an owner or admin of the workspace can do this")


def membership_add(
    *, workspace: Workspace, user: User, role: str = Role.MEMBER, acting_user: User
) -> Membership:
    require_managing_role(user=acting_user, workspace=workspace)
    if role == Role.OWNER and membership_role(user=acting_user, workspace=workspace) != Role.OWNER:
        raise NotPermitted("only an owner can add another owner")
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def membership_remove(*, workspace: Workspace, user: User, acting_user: User) -> None:
    if acting_user != user:
        require_managing_role(user=acting_user, workspace=workspace)
    memberships = Membership.objects.select_for_update().filter(workspace=workspace)
    owners = [m.user_id for m in memberships if m.role == Role.OWNER]
    if owners == [user.pk]:
        raise LastOwner("a workspace keeps at least one owner")
    memberships.filter(user=user).delete()
