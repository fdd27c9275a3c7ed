"""What the signed-in pages may assume about their request, and the decorator that ensures it."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect

from console.models import User, Workspace


class SignedInRequest(HttpRequest):
    """A request `login_required` let through; CurrentWorkspaceMiddleware set its workspace (None if the
    user has none yet)."""

    user: User
    workspace: Workspace | None


class WorkspaceRequest(SignedInRequest):
    """A request `workspace_required` let through: a signed-in user with a current workspace."""

    workspace: Workspace


View = Callable[..., HttpResponseBase]


def workspace_required(view: View) -> View:
    """Signed in, with a current workspace (a user without one is sent to create it)."""

    @login_required
    @wraps(view)
    def wrapper(request: SignedInRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.workspace is None:
            return redirect("console:workspace_new")
        return view(request, *args, **kwargs)

    return wrapper
