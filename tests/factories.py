"""Small builders for test data, going through the same services the product uses."""

import itertools
import uuid

from django.utils import timezone

from billing.services import credits_grant
from console.models import User, Workspace
from console.services.workspaces import workspace_create
from gateway.auth import Caller

_counter = itertools.count(1)


def make_user(
    email: str | None = None, password: str = "a-long-test-password", *, verified: bool = True
) -> User:
    return User.objects.create_user(
        email or f"user{next(_counter)}@example.com",
        password,
        email_verified_at=timezone.now() if verified else None,
    )


def make_workspace(
    *, owner: User | None = None, credits_micro_usd: int = 0, name: str = "Test workspace"
) -> Workspace:
    workspace = workspace_create(owner=owner or make_user(), name=name)
    if credits_micro_usd:
        credits_grant(workspace_id=workspace.id, amount_micro_usd=credits_micro_usd, reason="test credits")
    return workspace


def key_less_caller(workspace_id: uuid.UUID, source: str = "api") -> Caller:
    """A caller of the workspace without an API key (as a playground key is), no limits."""
    return Caller(
        workspace_id=workspace_id,
        workspace_locked=False,
        api_key_id=None,
        allowed_models=frozenset(),
        rate_limit_rpm=None,
        source=source,
    )
