"""Who is calling: an API key (cached in-process for at most a second) or a one-time playground key."""

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from console.models import ApiKey
from console.services.keys import playground_key_redeem
from console.services.secrets import PLAYGROUND_KEY_PREFIX, secret_hash
from gateway.errors import ErrorCode, GatewayError

# Revocation must take effect across processes within a second, so a cached key lives at most that long.
KEY_CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    workspace_id: uuid.UUID
    workspace_locked: bool
    api_key_id: int | None
    allowed_models: frozenset[str]
    rate_limit_rpm: int | None
    source: str  # api | playground | chat
    limit_micro_usd: int | None = None
    limit_reset: str = "none"


def key_from_headers(headers: dict[bytes, bytes]) -> str | None:
    """`Authorization: Bearer <key>` (OpenAI SDK), `x-api-key` (Anthropic SDK) or `Authorization: Api-Key`."""
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() in ("bearer", "api-key") and credential.strip():
        return credential.strip()
    api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return api_key or None


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Caller | None]] = {}

    def has_fresh(self, secret: str) -> bool:
        """Whether `lookup` would answer without the database."""
        cached = self._entries.get(secret_hash(secret))
        return cached is not None and cached[0] > time.monotonic()

    def lookup(self, secret: str) -> Caller | None:
        """Runs in a worker thread: may query the database."""
        hashed = secret_hash(secret)
        now = time.monotonic()
        cached = self._entries.get(hashed)
        if cached is not None and cached[0] > now:
            return cached[1]
        caller = _load_api_key(hashed)
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[hashed] = (now + KEY_CACHE_SECONDS, caller)
        return caller


def _load_api_key(hashed: str) -> Caller | None:
    key = ApiKey.objects.select_related("workspace").filter(secret_hash=hashed).first()
    if key is None or not key.is_active():
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= timedelta(minutes=1):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return Caller(
        workspace_id=key.workspace_id,
        workspace_locked=key.workspace.is_locked,
        api_key_id=key.pk,
        allowed_models=frozenset(key.allowed_models),
        rate_limit_rpm=key.rate_limit_rpm,
        source="api",
        limit_micro_usd=key.limit_micro_usd,
        limit_reset=key.limit_reset,
    )


key_cache = KeyCache()


def authenticate(headers: dict[bytes, bytes]) -> Caller:
    """The caller, or GatewayError(invalid_api_key / workspace_locked). Runs in a worker thread."""
    secret = key_from_headers(headers)
    if secret is None:
        raise GatewayError(ErrorCode.INVALID_API_KEY, "Missing API key: send Authorization: Bearer <key>.")
    if secret.startswith(PLAYGROUND_KEY_PREFIX):
        caller = _redeem_playground_key(secret)
    else:
        caller = key_cache.lookup(secret)
    if caller is None:
        raise GatewayError(ErrorCode.INVALID_API_KEY, "Invalid, revoked or expired API key.")
    if caller.workspace_locked:
        raise GatewayError(ErrorCode.WORKSPACE_LOCKED, "This workspace is locked; contact support.")
    return caller


def _redeem_playground_key(secret: str) -> Caller | None:
    key = playground_key_redeem(secret=secret)
    if key is None:
        return None
    return Caller(
        workspace_id=key.workspace_id,
        workspace_locked=key.workspace.is_locked,
        api_key_id=None,
        allowed_models=frozenset(),
        rate_limit_rpm=None,
        source=key.source,
    )
