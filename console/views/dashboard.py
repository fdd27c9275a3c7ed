"""The signed-in pages: overview, billing (balance and ledger), workspaces."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing.selectors import account_for, ledger_entries
from catalog.snippets import request_snippets
from console.forms import WorkspaceForm
from console.selectors import SESSION_WORKSPACE_KEY, workspaces_for_user
from console.services.workspaces import membership_role, workspace_create
from console.views.decorators import SignedInRequest, WorkspaceRequest, workspace_required

QUICKSTART_MODEL = "hyperinfer/sandbox"  # free and offline: the first request costs nothing


@workspace_required
def dashboard(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    account = account_for(workspace_id=workspace.pk)
    active_keys = workspace.api_keys.filter(revoked_at__isnull=True)
    context = {
        "account": account,
        "available_micro_usd": account.balance_micro_usd - account.reserved_micro_usd,
        "recent_entries": ledger_entries(workspace_id=workspace.pk)[:5],
        "active_keys": active_keys.count(),
        "newest_key": active_keys.order_by("-created_at").first(),
        "role": membership_role(user=request.user, workspace=workspace),
        "site_url": request.build_absolute_uri("/").rstrip("/"),
        "snippets": request_snippets(
            slug=QUICKSTART_MODEL, site_url=request.build_absolute_uri("/"), max_output_tokens=1024
        ),
    }
    return render(request, "console/dashboard.html", context)


@workspace_required
def billing(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    page = Paginator(ledger_entries(workspace_id=workspace.pk), 50).get_page(request.GET.get("page"))
    return render(
        request, "console/billing.html", {"account": account_for(workspace_id=workspace.pk), "page": page}
    )


@login_required
@require_POST
def workspace_switch(request: SignedInRequest) -> HttpResponse:
    chosen_id = request.POST.get("workspace")
    chosen = workspaces_for_user(user=request.user).filter(pk=chosen_id).first() if chosen_id else None
    if chosen is not None:
        request.session[SESSION_WORKSPACE_KEY] = str(chosen.pk)
    target = request.POST.get("next") or ""
    # Only back to a page of this site: never an open redirect to another host.
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("console:dashboard")
    return redirect(target)


@login_required
def workspace_new(request: SignedInRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = workspace_create(owner=request.user, name=form.cleaned_data["name"])
        request.session[SESSION_WORKSPACE_KEY] = str(workspace.pk)
        messages.success(request, f"Created {workspace.name}.")
        return redirect("console:dashboard")
    return render(request, "console/workspace_new.html", {"form": form})
