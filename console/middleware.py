"""Puts the signed-in user's current workspace on the request (`request.workspace`)."""

from console.selectors import current_workspace


class CurrentWorkspaceMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.workspace = None
        if request.user.is_authenticated:
            request.workspace = current_workspace(request)
        return self.get_response(request)
