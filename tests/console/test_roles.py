"""Who may change or remove whom in a workspace — every (actor role x target x action), the expected outcome
written here from the rules, independently of the service: owners anyone; admins admins and members, never an
owner, never making an owner; members no one; anyone may leave; a workspace always keeps an owner."""

import threading

import pytest
from django.db import connection

from console.errors import InvalidField, LastOwner, NotPermitted
from console.models import Membership, Role
from console.services.workspaces import (
    membership_add,
    membership_remove,
    membership_role_change,
    workspace_create,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db

ACTORS = ["owner", "admin", "member", "outsider"]
TARGETS = ["owner", "admin", "member", "self"]
ACTIONS = ["make_owner", "make_admin", "make_member", "remove"]
OK = "ok"


def expected(actor: str, target: str, action: str):
    """The rules, as a table a person can check line by line."""
    if actor == "outsider":
        return InvalidField if target == "self" else NotPermitted  # not a member: nothing to leave
    if target == "self" and action == "remove":
        return OK  # anyone may leave (the workspace keeps its founding owner here)
    if actor == "member":
        return NotPermitted
    if actor == "admin":
        target_role = "admin" if target == "self" else target
        if target_role == "owner" or action == "make_owner":
            return NotPermitted
        return OK
    return OK  # an owner; another owner remains in every case of this matrix


def workspace_with(actor: str, target: str):
    """A workspace whose founder owns it, the actor with their role, and the target (a separate person with
    the target role, or the actor themself)."""
    founder = make_user()
    workspace = workspace_create(owner=founder, name="Matrix")
    actor_user = make_user()
    if actor != "outsider":
        Membership.objects.create(workspace=workspace, user=actor_user, role=actor)
    if target == "self":
        return workspace, actor_user, actor_user
    target_user = founder if target == "owner" else make_user()
    if target != "owner":
        Membership.objects.create(workspace=workspace, user=target_user, role=target)
    return workspace, actor_user, target_user


def act(workspace, actor_user, target_user, action: str) -> None:
    if action == "remove":
        membership_remove(workspace=workspace, user=target_user, acting_user=actor_user)
    else:
        role = action.removeprefix("make_")
        membership_role_change(workspace=workspace, user=target_user, role=role, acting_user=actor_user)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_every_actor_target_and_action(actor, target, action):
    workspace, actor_user, target_user = workspace_with(actor, target)
    before = dict(Membership.objects.filter(workspace=workspace).values_list("user_id", "role"))
    outcome = expected(actor, target, action)
    if outcome is OK:
        act(workspace, actor_user, target_user, action)
        after = dict(Membership.objects.filter(workspace=workspace).values_list("user_id", "role"))
        if action == "remove":
            assert target_user.pk not in after
        else:
            assert after[target_user.pk] == action.removeprefix("make_")
    else:
        with pytest.raises(outcome):
            act(workspace, actor_user, target_user, action)
        assert dict(Membership.objects.filter(workspace=workspace).values_list("user_id", "role")) == before
    owners = Membership.objects.filter(workspace=workspace, role=Role.OWNER)
    assert owners.exists()  # whatever happened, the workspace has an owner


def test_an_admin_cannot_demote_or_remove_the_only_owner():
    owner, admin = make_user(), make_user()
    workspace = workspace_create(owner=owner, name="Team")
    membership_add(workspace=workspace, user=admin, role=Role.ADMIN, acting_user=owner)
    for role in (Role.ADMIN, Role.MEMBER):
        with pytest.raises(NotPermitted, match="admin cannot change or remove an owner"):
            membership_role_change(workspace=workspace, user=owner, role=role, acting_user=admin)
        with pytest.raises(NotPermitted):  # nor through "adding" the owner again with another role
            membership_add(workspace=workspace, user=owner, role=role, acting_user=admin)
    with pytest.raises(NotPermitted):
        membership_remove(workspace=workspace, user=owner, acting_user=admin)
    assert Membership.objects.get(workspace=workspace, user=owner).role == Role.OWNER


def test_the_last_owner_can_neither_demote_themself_nor_leave_but_can_once_another_owner_exists():
    owner, other = make_user(), make_user()
    workspace = workspace_create(owner=owner, name="Solo")
    with pytest.raises(LastOwner):
        membership_role_change(workspace=workspace, user=owner, role=Role.ADMIN, acting_user=owner)
    with pytest.raises(LastOwner):
        membership_remove(workspace=workspace, user=owner, acting_user=owner)
    membership_add(workspace=workspace, user=other, role=Role.OWNER, acting_user=owner)
    membership_role_change(workspace=workspace, user=owner, role=Role.MEMBER, acting_user=owner)
    assert Membership.objects.get(workspace=workspace, user=owner).role == Role.MEMBER


def test_an_unknown_role_names_the_field():
    owner, member = make_user(), make_user()
    workspace = workspace_create(owner=owner, name="Team")
    membership_add(workspace=workspace, user=member, acting_user=owner)
    with pytest.raises(InvalidField) as refused:
        membership_role_change(workspace=workspace, user=member, role="emperor", acting_user=owner)
    assert refused.value.field == "role"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner():
    if connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL (row locks)")
    first, second = make_user(), make_user()
    workspace = workspace_create(owner=first, name="Duel")
    membership_add(workspace=workspace, user=second, role=Role.OWNER, acting_user=first)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor, target) -> None:
        start.wait()
        try:
            membership_role_change(workspace=workspace, user=target, role=Role.MEMBER, acting_user=actor)
            outcomes.append("demoted")
        except (LastOwner, NotPermitted) as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=pair) for pair in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) in (["LastOwner", "demoted"], ["NotPermitted", "demoted"])
    assert Membership.objects.filter(workspace=workspace, role=Role.OWNER).count() == 1
