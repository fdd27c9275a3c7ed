"""Puts the signed-in user's current workspace on the request (`request.workspace`).

Not on `/api/`: the API authenticates by key, never by session, and reading `request.user` there would
open the session and add `Vary: Cookie`, which keeps shared caches from storing the public catalog.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from console.selectors import current_workspace

if TYPE_CHECKING:
    from console.views.decorators import SignedInRequest


class CurrentWorkspaceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        # Here a request gets the `workspace` SignedInRequest declares; its user is read only once signed in.
        signed_in = cast("SignedInRequest", request)
        signed_in.workspace = None
        if not request.path.startswith("/api/") and request.user.is_authenticated:
            signed_in.workspace = current_workspace(signed_in)
        return self.get_response(request)
