"""Members and invitations: the members page (roles, removal, leaving, invitations) and the invitation link's
landing page. Every rule is the services'; the page only hides the controls an actor may not use."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from console.errors import InvalidField, InvitationInvalid, LastOwner, NotPermitted
from console.forms import InviteForm
from console.models import Invitation, Membership, Role, User
from console.selectors import SESSION_WORKSPACE_KEY
from console.services.invitations import (
    invitation_accept,
    invitation_create,
    invitation_find,
    invitation_revoke,
    invitations_pending,
)
from console.services.workspaces import (
    may_manage,
    membership_remove,
    membership_role,
    membership_role_change,
    roles_grantable,
)
from console.views.decorators import WorkspaceRequest, workspace_required


def _site_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


@workspace_required
def members(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    role = membership_role(user=request.user, workspace=workspace)
    grantable = roles_grantable(actor_role=role)
    form = InviteForm(request.POST or None, roles=grantable)
    if request.method == "POST" and form.is_valid():
        try:
            issued = invitation_create(
                workspace=workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                acting_user=request.user,
                site_url=_site_url(request),
            )
        except InvalidField as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except NotPermitted as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Invitation sent to {issued.record.email}.")
            return redirect("console:members")
    memberships = list(Membership.objects.filter(workspace=workspace).select_related("user"))
    sole_owner = [m.user_id for m in memberships if m.role == Role.OWNER] == [request.user.pk]
    rows = [
        {
            "membership": m,
            "is_me": m.user_id == request.user.pk,
            "may_leave": m.user_id == request.user.pk and not sole_owner,
            "manageable": m.user_id != request.user.pk and may_manage(actor_role=role, target_role=m.role),
        }
        for m in memberships
    ]
    context = {
        "rows": rows,
        "role": role,
        "grantable": [(value, label) for value, label in Role.choices if value in grantable],
        "form": form if grantable else None,
        "invitations": [(i, i.role in grantable) for i in invitations_pending(workspace=workspace)],
    }
    return render(request, "console/members.html", context)


def _membership(request: WorkspaceRequest, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, workspace=request.workspace
    )


@workspace_required
@require_POST
def member_role(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    try:
        membership_role_change(
            workspace=request.workspace,
            user=membership.user,
            role=request.POST.get("role", ""),
            acting_user=request.user,
        )
    except (InvalidField, NotPermitted, LastOwner) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user.email} is now {request.POST['role']}.")
    return redirect("console:members")


@workspace_required
@require_POST
def member_remove(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    leaving = membership.user_id == request.user.pk
    try:
        membership_remove(workspace=request.workspace, user=membership.user, acting_user=request.user)
    except (InvalidField, NotPermitted, LastOwner) as exc:
        messages.error(request, str(exc))
        return redirect("console:members")
    if leaving:
        request.session.pop(SESSION_WORKSPACE_KEY, None)
        messages.success(request, f"You left {request.workspace.name}.")
        return redirect("console:dashboard")
    messages.success(request, f"Removed {membership.user.email}.")
    return redirect("console:members")


@workspace_required
@require_POST
def invitation_withdraw(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=invitation_id, workspace=request.workspace)
    try:
        invitation_revoke(invitation=invitation, acting_user=request.user)
    except NotPermitted as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"The invitation to {invitation.email} is withdrawn.")
    return redirect("console:members")


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the e-mail: who invites you where, and Accept (signed in with the invited address), or
    sign up / log in first and come back here."""
    try:
        found = invitation_find(token=token)
    except InvitationInvalid as exc:
        return render(request, "console/invitation.html", {"problem": str(exc)}, status=410)
    here = reverse("console:invitation", args=[token])
    user = request.user if request.user.is_authenticated else None
    if request.method == "POST" and isinstance(user, User):
        try:
            membership = invitation_accept(token=token, user=user)
        except (InvitationInvalid, NotPermitted) as exc:
            messages.error(request, str(exc))
        else:
            request.session[SESSION_WORKSPACE_KEY] = str(membership.workspace_id)
            messages.success(
                request, f"Welcome to {membership.workspace.name}: you are {membership.get_role_display()}."
            )
            return redirect("console:dashboard")
    has_account = User.objects.filter(email__iexact=found.email).exists()
    context = {
        "invitation": found,
        "signed_in_as": user.email if isinstance(user, User) else None,
        "matches": isinstance(user, User) and user.email.lower() == found.email.lower(),
        "has_account": has_account,
        "here": here,
    }
    return render(request, "console/invitation.html", context)
