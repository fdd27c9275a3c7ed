"""API keys: list, create (the secret is shown on the response page, once), revoke."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from billing.money import micro_to_usd
from catalog.selectors import models_active
from console.errors import InvalidField, NotPermitted
from console.forms import ApiKeyEditForm, ApiKeyForm
from console.models import ApiKey
from console.services.keys import api_key_create, api_key_revoke, api_key_update
from console.views.decorators import WorkspaceRequest, workspace_required


def _model_choices() -> list[tuple[str, str]]:
    return [(model.slug, f"{model.name} ({model.slug})") for model in models_active()]


@workspace_required
@never_cache
def keys(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    form = ApiKeyForm(request.POST or None, model_choices=_model_choices())
    if request.method == "POST" and form.is_valid():
        try:
            issued = api_key_create(
                workspace=workspace,
                created_by=request.user,
                expires_at=form.expires_at(),
                **form.key_settings(),
            )
        except (InvalidField, NotPermitted) as exc:
            form.add_error(None, str(exc))
        else:
            # Rendered, not redirected: the secret never passes through the session or a URL.
            return render(
                request, "console/key_created.html", {"key": issued.record, "secret": issued.secret}
            )
    api_keys = ApiKey.objects.filter(workspace=workspace).select_related("created_by", "spend")
    return render(request, "console/keys.html", {"form": form, "api_keys": api_keys})


@workspace_required
def key_edit(request: WorkspaceRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey, pk=key_id, workspace=request.workspace, revoked_at__isnull=True)
    initial = {
        "name": api_key.name,
        "limit_usd": micro_to_usd(api_key.limit_micro_usd) if api_key.limit_micro_usd is not None else None,
        "limit_reset": api_key.limit_reset,
        "allowed_models": api_key.allowed_models,
        "rate_limit_rpm": api_key.rate_limit_rpm,
    }
    form = ApiKeyEditForm(request.POST or None, initial=initial, model_choices=_model_choices())
    if request.method == "POST" and form.is_valid():
        try:
            api_key_update(api_key=api_key, acting_user=request.user, **form.key_settings())
        except (InvalidField, NotPermitted) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved {api_key.name}.")
            return redirect("console:keys")
    return render(request, "console/key_edit.html", {"form": form, "key": api_key})


@workspace_required
@require_POST
def key_revoke(request: WorkspaceRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey, pk=key_id, workspace=request.workspace)
    try:
        api_key_revoke(api_key=api_key, acting_user=request.user)
    except NotPermitted as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Revoked {api_key.name} ({api_key.prefix}…).")
    return redirect("console:keys")
