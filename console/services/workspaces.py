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


def _role_checked(role: str) -> str:
    if role not in Role.values:
        raise InvalidField("role", f"must be one of {', '.join(Role.values)}")
    return role


def _locked_memberships(workspace: Workspace) -> dict[int, Membership]:
    """The workspace's memberships by user id, locked until the transaction ends: two owners demoting
    each other at once are decided one after the other, so the last-owner rule holds."""
    return {m.user_id: m for m in Membership.objects.select_for_update().filter(workspace=workspace)}


def _require_may_change(*, actor: Membership | None, target: Membership, role: str | None) -> None:
    """Who may change (role) or remove (None) whom: owners anyone; admins admins and members but never an
    owner, and never make an owner; members no one (but themselves, to leave)."""
    if actor is None or actor.role not in MANAGING_ROLES:
        raise NotPermitted("only an owner or admin of the workspace can change its members")
    if actor.role == Role.ADMIN and target.role == Role.OWNER:
        raise NotPermitted("an admin cannot change or remove an owner")
    if actor.role == Role.ADMIN and role == Role.OWNER:
        raise NotPermitted("only an owner can make someone an owner")


def _require_an_owner_stays(memberships: dict[int, Membership], target: Membership, role: str | None) -> None:
    owners = [m for m in memberships.values() if m.role == Role.OWNER]
    if target.role == Role.OWNER and role != Role.OWNER and owners == [target]:
        raise LastOwner("a workspace keeps at least one owner: make someone else an owner first")


@transaction.atomic
def membership_role_change(*, workspace: Workspace, user: User, role: str, acting_user: User) -> Membership:
    role = _role_checked(role)
    memberships = _locked_memberships(workspace)
    target = memberships.get(user.pk)
    if target is None:
        raise InvalidField("user", f"{user.email} is not a member of {workspace.name}")
    _require_may_change(actor=memberships.get(acting_user.pk), target=target, role=role)
    _require_an_owner_stays(memberships, target, role)
    if target.role != role:
        target.role = role
        target.save(update_fields=["role"])
    return target


@transaction.atomic
def membership_add(
    *, workspace: Workspace, user: User, role: str = Role.MEMBER, acting_user: User
) -> Membership:
    """Add someone who has an account (an existing member's role changes by the same rules instead)."""
    role = _role_checked(role)
    memberships = _locked_memberships(workspace)
    if user.pk in memberships:
        return membership_role_change(workspace=workspace, user=user, role=role, acting_user=acting_user)
    actor = memberships.get(acting_user.pk)
    _require_may_change(actor=actor, target=Membership(role=Role.MEMBER), role=role)
    return Membership.objects.create(workspace=workspace, user=user, role=role)


@transaction.atomic
def membership_remove(*, workspace: Workspace, user: User, acting_user: User) -> None:
    """Remove a member, or leave (anyone may leave, but the last owner)."""
    memberships = _locked_memberships(workspace)
    target = memberships.get(user.pk)
    if target is None:
        raise InvalidField("user", f"{user.email} is not a member of {workspace.name}")
    if acting_user.pk != user.pk:
        _require_may_change(actor=memberships.get(acting_user.pk), target=target, role=None)
    _require_an_owner_stays(memberships, target, None)
    target.delete()


def roles_grantable(*, actor_role: str | None) -> list[str]:
    """The roles this actor may give (to invite or change someone to)."""
    if actor_role == Role.OWNER:
        return list(Role.values)
    if actor_role == Role.ADMIN:
        return [Role.ADMIN, Role.MEMBER]
    return []


def may_manage(*, actor_role: str | None, target_role: str) -> bool:
    """Whether the actor may change or remove a member of `target_role` (for showing the controls)."""
    return actor_role == Role.OWNER or (actor_role == Role.ADMIN and target_role != Role.OWNER)
