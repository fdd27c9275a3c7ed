from typing import Any

from django.conf import settings
from django.http import HttpRequest

from billing.money import format_usd
from console.selectors import workspaces_for_user


def workspaces(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    grant = settings.SIGNUP_GRANT_MICRO_USD
    return {
        "current_workspace": getattr(request, "workspace", None),
        "my_workspaces": workspaces_for_user(user=user),
        "signup_grant": format_usd(grant) if grant > 0 and not user.email_verified_at else "",
    }
