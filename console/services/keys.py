"""API keys and one-time playground keys: create (secret returned once), revoke, authenticate."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.key_spend import key_spend_open, key_spend_restart_period
from catalog.selectors import model_slugs
from console.errors import InvalidField, NotPermitted
from console.models import (
    MANAGING_ROLES,
    ApiKey,
    LimitReset,
    PlaygroundKey,
    PlaygroundSource,
    User,
    Workspace,
)
from console.services.secrets import (
    API_KEY_PREFIX,
    PLAYGROUND_KEY_PREFIX,
    secret_display_prefix,
    secret_generate,
    secret_hash,
)
from console.services.workspaces import membership_role


@dataclass(frozen=True)
class IssuedKey:
    """A key as just created: the only moment its secret exists outside the caller's hands."""

    record: ApiKey | PlaygroundKey
    secret: str


def _validate_key_settings(
    *, limit_micro_usd: int | None, limit_reset: str, allowed_models: list[str], rate_limit_rpm: int | None
) -> None:
    if limit_micro_usd is not None and limit_micro_usd < 0:
        raise InvalidField("limit_micro_usd", "a credit limit cannot be negative")
    if limit_reset not in LimitReset.values:
        raise InvalidField("limit_reset", f"must be one of {', '.join(LimitReset.values)}")
    if rate_limit_rpm is not None and rate_limit_rpm < 1:
        raise InvalidField("rate_limit_rpm", "must be at least 1 request per minute")
    unknown = sorted(set(allowed_models) - model_slugs())
    if unknown:
        raise InvalidField("allowed_models", f"not in the catalog: {', '.join(unknown)}")


@transaction.atomic
def api_key_create(
    *,
    workspace: Workspace,
    name: str,
    created_by: User | None,
    expires_at: datetime | None = None,
    limit_micro_usd: int | None = None,
    limit_reset: str = LimitReset.NONE,
    allowed_models: list[str] | None = None,
    rate_limit_rpm: int | None = None,
) -> IssuedKey:
    name = name.strip()
    if not name:
        raise InvalidField("name", "a key needs a name")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidField("expires_at", "must be in the future")
    allowed = sorted(set(allowed_models or []))
    _validate_key_settings(
        limit_micro_usd=limit_micro_usd,
        limit_reset=limit_reset,
        allowed_models=allowed,
        rate_limit_rpm=rate_limit_rpm,
    )
    if created_by is not None and membership_role(user=created_by, workspace=workspace) is None:
        raise NotPermitted("only members of the workspace can create its keys")
    secret = secret_generate(API_KEY_PREFIX)
    key = ApiKey.objects.create(
        workspace=workspace,
        name=name,
        prefix=secret_display_prefix(secret, API_KEY_PREFIX),
        secret_hash=secret_hash(secret),
        created_by=created_by,
        expires_at=expires_at,
        limit_micro_usd=limit_micro_usd,
        limit_reset=limit_reset,
        allowed_models=allowed,
        rate_limit_rpm=rate_limit_rpm,
    )
    key_spend_open(api_key_id=key.pk)
    return IssuedKey(record=key, secret=secret)


def _require_key_manager(*, api_key: ApiKey, acting_user: User | None) -> None:
    """Owners and admins manage every key of the workspace, members their own; None is an operator."""
    if acting_user is None:
        return
    role = membership_role(user=acting_user, workspace=api_key.workspace)
    if role not in MANAGING_ROLES and api_key.created_by_id != acting_user.pk:
        raise NotPermitted("only an owner, an admin or the key's creator can change or revoke it")


def api_key_update(
    *,
    api_key: ApiKey,
    acting_user: User | None,
    name: str,
    limit_micro_usd: int | None,
    limit_reset: str,
    allowed_models: list[str],
    rate_limit_rpm: int | None,
) -> ApiKey:
    """Change a key's name and limits. A new reset period restarts the limit; a new amount keeps the spend."""
    _require_key_manager(api_key=api_key, acting_user=acting_user)
    name = name.strip()
    if not name:
        raise InvalidField("name", "a key needs a name")
    allowed = sorted(set(allowed_models))
    _validate_key_settings(
        limit_micro_usd=limit_micro_usd,
        limit_reset=limit_reset,
        allowed_models=allowed,
        rate_limit_rpm=rate_limit_rpm,
    )
    changes = {
        "name": name,
        "limit_micro_usd": limit_micro_usd,
        "limit_reset": limit_reset,
        "allowed_models": allowed,
        "rate_limit_rpm": rate_limit_rpm,
    }
    if limit_reset != api_key.limit_reset:
        key_spend_restart_period(workspace_id=api_key.workspace_id, api_key_id=api_key.pk)
    ApiKey.objects.filter(pk=api_key.pk).update(**changes)
    api_key.refresh_from_db()
    return api_key


def api_key_revoke(*, api_key: ApiKey, acting_user: User | None) -> ApiKey:
    """Revoke a key: owners and admins may revoke any key of the workspace, members their own."""
    _require_key_manager(api_key=api_key, acting_user=acting_user)
    if api_key.revoked_at is None:
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def is_playground_key(secret: str) -> bool:
    """A one-time playground key (redeem it with `playground_key_redeem`), not an API key."""
    return secret.startswith(PLAYGROUND_KEY_PREFIX)


def api_key_authenticate(*, secret: str) -> ApiKey | None:
    """The active key for this secret, or None (unknown, revoked or expired)."""
    if not secret.startswith(API_KEY_PREFIX) or secret.startswith(PLAYGROUND_KEY_PREFIX):
        return None
    key = ApiKey.objects.select_related("workspace").filter(secret_hash=secret_hash(secret)).first()
    if key is None or not key.is_active():
        return None
    return key


def api_key_touch(*, api_key: ApiKey, now: datetime | None = None) -> None:
    """Record use; at most one write a minute per key so the hot path does not write on every request."""
    now = now or timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= timedelta(minutes=1):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def playground_key_mint(
    *, workspace: Workspace, user: User, source: str = PlaygroundSource.PLAYGROUND
) -> IssuedKey:
    if source not in PlaygroundSource.values:
        raise InvalidField("source", f"must be one of {', '.join(PlaygroundSource.values)}")
    if membership_role(user=user, workspace=workspace) is None:
        raise NotPermitted("user_id: not a member of this workspace")
    secret = secret_generate(PLAYGROUND_KEY_PREFIX)
    key = PlaygroundKey.objects.create(
        workspace=workspace,
        user=user,
        source=source,
        prefix=secret_display_prefix(secret, PLAYGROUND_KEY_PREFIX),
        secret_hash=secret_hash(secret),
        expires_at=timezone.now() + timedelta(seconds=settings.PLAYGROUND_KEY_TTL_SECONDS),
    )
    return IssuedKey(record=key, secret=secret)


def playground_key_redeem(*, secret: str) -> PlaygroundKey | None:
    """Use a playground key: valid once, before it expires. A second use, or a late one, gets None."""
    if not secret.startswith(PLAYGROUND_KEY_PREFIX):
        return None
    now = timezone.now()
    hashed = secret_hash(secret)
    claimed = PlaygroundKey.objects.filter(
        secret_hash=hashed, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if not claimed:
        return None
    return PlaygroundKey.objects.select_related("workspace", "user").get(secret_hash=hashed)
