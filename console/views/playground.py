"""The dashboard's chat playground: a page that streams through the gateway from the browser, with a one-time
key (`source: chat`) minted per answer, so no API key ever sits in the page."""

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from catalog.selectors import models_active
from console.errors import NotPermitted
from console.models import PlaygroundSource
from console.services.keys import playground_key_mint
from console.views.decorators import WorkspaceRequest, workspace_required

# The formats the page speaks, as the public API names them: (value, label, path).
FORMATS = (
    ("chat_completions", "OpenAI Chat Completions", "/api/v1/chat/completions"),
    ("responses", "OpenAI Responses", "/api/v1/responses"),
    ("messages", "Anthropic Messages", "/api/v1/messages"),
)
DEFAULT_MODEL = "hyperinfer/sandbox-pro"


@workspace_required
def playground(request: WorkspaceRequest) -> HttpResponse:
    models = [model for model in models_active() if model.kind == "chat"]  # the playground chats
    chosen = request.GET.get("model", DEFAULT_MODEL)
    context = {
        "models": models,
        "chosen_model": chosen if any(m.slug == chosen for m in models) else DEFAULT_MODEL,
        "formats": FORMATS,
    }
    return render(request, "console/playground.html", context)


@workspace_required
@require_POST
@never_cache
def playground_key(request: WorkspaceRequest) -> JsonResponse:
    """A key for one answer: valid once, for minutes; the page uses it for one request and drops it."""
    try:
        issued = playground_key_mint(
            workspace=request.workspace, user=request.user, source=PlaygroundSource.CHAT
        )
    except NotPermitted as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    expires_at = issued.record.expires_at
    return JsonResponse({"key": issued.secret, "expires_at": expires_at and expires_at.isoformat()})
