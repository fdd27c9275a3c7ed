from typing import Any

from django.http import HttpRequest

from console.selectors import workspaces_for_user


def workspaces(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_workspace": getattr(request, "workspace", None),
        "my_workspaces": workspaces_for_user(user=user),
    }
