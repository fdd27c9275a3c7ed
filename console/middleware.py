"""Puts the signed-in user's current workspace on the request (`request.workspace`).

Not on `/api/`: the API authenticates by key, never by session, and reading `request.user` there would
open the session and add `Vary: Cookie`, which keeps shared caches from storing the public catalog.
"""

from console.selectors import current_workspace


class CurrentWorkspaceMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.workspace = None
        if not request.path.startswith("/api/") and request.user.is_authenticated:
            request.workspace = current_workspace(request)
        return self.get_response(request)
