from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect


def workspace_required(view):
    """Signed in, with a current workspace (a user without one is sent to create it)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.workspace is None:
            return redirect("console:workspace_new")
        return view(request, *args, **kwargs)

    return wrapper
