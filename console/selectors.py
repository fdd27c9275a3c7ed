"""Console reads shared by views, admin and commands."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from billing.selectors import KeySpendSeen, key_spend_seen
from console.models import ApiKey, User, Workspace

if TYPE_CHECKING:
    from console.views.decorators import SignedInRequest

SESSION_WORKSPACE_KEY = "workspace_id"


def workspaces_for_user(*, user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("-is_personal", "name")


def current_workspace(request: "SignedInRequest") -> Workspace | None:
    """The workspace chosen in this session, falling back to the user's first (personal) one."""
    workspaces = workspaces_for_user(user=request.user)
    chosen = request.session.get(SESSION_WORKSPACE_KEY)
    if chosen:
        workspace = workspaces.filter(pk=chosen).first()
        if workspace is not None:
            return workspace
    return workspaces.first()


@dataclass(frozen=True)
class KeyAsSeen:
    """An API key's settings with its spend as its holder sees it (Redis's unflushed figures included)."""

    key: ApiKey
    spend: KeySpendSeen


def api_key_as_seen(*, api_key: ApiKey) -> KeyAsSeen:
    spend = key_spend_seen(
        workspace_id=api_key.workspace_id,
        api_key_id=api_key.pk,
        limit_micro_usd=api_key.limit_micro_usd,
        reset=api_key.limit_reset,
    )
    return KeyAsSeen(key=api_key, spend=spend)


def api_key_resets(*, api_key_ids: set[int]) -> dict[int, str]:
    """The limit reset setting of each of these keys that still exists."""
    return dict(ApiKey.objects.filter(pk__in=api_key_ids).values_list("pk", "limit_reset"))


def workspace_find(*, ref: str) -> Workspace:
    """A workspace by slug, id or owner e-mail (for operator commands). Raises Workspace.DoesNotExist."""
    ref = ref.strip()
    if "@" in ref:
        return (
            Workspace.objects.filter(memberships__user__email__iexact=ref, memberships__role="owner")
            .order_by("-is_personal", "created_at")
            .first()
        ) or _missing(ref)
    workspace = Workspace.objects.filter(slug=ref).first()
    if workspace is None:
        try:
            workspace = Workspace.objects.filter(pk=ref).first()
        except ValidationError:
            workspace = None
    return workspace or _missing(ref)


def _missing(ref: str) -> NoReturn:
    raise Workspace.DoesNotExist(f"no workspace matches {ref!r} (slug, id, or owner e-mail)")
