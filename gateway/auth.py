"""Who is calling: an API key (cached in-process for at most a second) or a one-time playground key.

The rules of keys (hashing, expiry, revocation, one-time playground keys) are console's
(console/services/keys.py); this module only caches their answer for the hot path. While PostgreSQL does not
answer, a key's last answer stands (until the key's own expiry): the gateway goes on serving the keys it
knows, rather than failing every request of an outage that its meter and journal are built to outlast.
"""

import functools
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from django.db import DatabaseError

from console.services.keys import (
    api_key_authenticate,
    api_key_touch,
    is_playground_key,
    playground_key_redeem,
)
from core.api_keys import key_from_headers
from core.encoding import compact_json
from core.errors import ApiError, ErrorCode
from gateway import outage
from gateway.load_ahead import load_ahead
from gateway.outage import PostgresDown, postgres_attempt

# Revocation must take effect across processes within a second, so a cached key lives at most that long.
KEY_CACHE_SECONDS = 1.0
# With PostgreSQL down, a known key's last answer is used again this long before the next load is tried.
OUTAGE_RETRY_SECONDS = 1.0
KEY_LOAD_WAIT_SECONDS = 1.0  # the longest a request of a known key waits for another request's load of it
# A key in use is loaded again in the background this long before its answer expires (gateway/load_ahead.py):
# its requests go on from memory meanwhile. Each answer still expires KEY_CACHE_SECONDS after its load began.
REFRESH_AHEAD_SECONDS = 0.25


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
    # The workspace id as text, made once a key load: Redis names, journal lines and records want text, and
    # str() of a UUID is a Python call (~1 µs) each time. Derived, so not in a settlement's JSON.
    workspace_text: str = field(init=False, repr=False, compare=False)
    # The caller as a settlement carries it (in the journal and its replays; `from_settlement` reads it
    # back), made once a key load: it was a dict and its JSON made anew for every request. Derived too.
    settlement_json: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "workspace_text", str(self.workspace_id))
        object.__setattr__(self, "settlement_json", compact_json(self._settlement()))

    def _settlement(self) -> dict[str, Any]:
        """The constructor's fields, the workspace id as text; the model allowlist is for admission only."""
        data = {each.name: getattr(self, each.name) for each in fields(self) if each.init}
        return {**data, "workspace_id": self.workspace_text, "allowed_models": []}

    @classmethod
    def from_settlement(cls, data: dict[str, Any]) -> "Caller":
        """The caller of a settlement read back from its JSON (`settlement_json`)."""
        return cls(**{**data, "workspace_id": uuid.UUID(data["workspace_id"]), "allowed_models": frozenset()})


def _cache_key(secret: str) -> str:
    # The cache never holds a secret itself, only its digest.
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Caller | None]] = {}
        # When a known key stops working whatever PostgreSQL says (its expiry, epoch seconds): an answer
        # used again through an outage is good until then.
        self._expires: dict[str, float] = {}
        self._loading: dict[str, threading.Lock] = {}  # a key being loaded: who else wants it waits
        self._database_down = False  # the last load failed: a known key no longer waits for another's load

    def fresh(self, secret: str) -> tuple[bool, Caller | None]:
        """(True, what `lookup` would answer) when it would answer without the database; (False, None) when
        it would have to load the key. An answer about to expire is loaded again in the background."""
        cache_key = _cache_key(secret)
        cached = self._entries.get(cache_key)
        if cached is None:
            return False, None
        left = cached[0] - time.monotonic()
        if left <= 0:
            return False, None
        if left < REFRESH_AHEAD_SECONDS and not self._database_down:
            load_ahead(("api key", cache_key), functools.partial(self.reload, secret))
        return True, cached[1]

    def knows(self, secret: str) -> bool:
        return _cache_key(secret) in self._entries

    def reload(self, secret: str) -> None:
        """The key loaded again ahead of its answer's expiry (`fresh`), unless a request is loading it. With
        PostgreSQL down the answer in hand serves until it expires; `lookup` then goes on as in any outage."""
        cache_key = _cache_key(secret)
        lock = self._loading.setdefault(cache_key, threading.Lock())
        if not lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            cached = self._entries.get(cache_key)
            if cached is not None and cached[0] - now >= REFRESH_AHEAD_SECONDS:
                return  # loaded meanwhile
            try:
                with postgres_attempt():
                    caller, expires = _load_api_key(secret)
            except DatabaseError:
                self._database_down = True
                return
            self._store(cache_key, now, caller, expires)
        finally:
            lock.release()
            self._loading.pop(cache_key, None)

    def lookup(self, secret: str) -> Caller | None:
        """Runs in a worker thread: may query the database. The requests that find a key stale together
        wait for one load of it: a key busy on many connections was loaded (and touched) by each of them
        every second."""
        cache_key = _cache_key(secret)
        cached = self._entries.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        lock = self._loading.setdefault(cache_key, threading.Lock())
        # A known key waits for another request's load only so long: one slower than that is PostgreSQL
        # failing (the pool's timeout) or not answering at all, and through an outage it does not wait. An
        # unknown key has nothing else to go on, but a load that does not come back fails it all the same.
        wait = (
            outage.ANSWER_SECONDS if cached is None else 0 if self._database_down else KEY_LOAD_WAIT_SECONDS
        )
        if not lock.acquire(timeout=wait):
            if cached is None:
                raise PostgresDown("PostgreSQL has not answered another request's load of this key")
            latest = self._entries.get(cache_key)
            if latest is not None and latest is not cached:
                return self._last_answer(cache_key, latest)  # answered as the wait ended, or given up on
            # As after a failed load: the last answer serves from memory a while, not after a wait each.
            self._database_down = True
            self._entries[cache_key] = (time.monotonic() + OUTAGE_RETRY_SECONDS, cached[1])
            return self._last_answer(cache_key, cached)
        try:
            cached = self._entries.get(cache_key)
            now = time.monotonic()
            if cached is not None and cached[0] > now:  # loaded while this one waited
                return cached[1]
            try:
                with postgres_attempt():
                    caller, expires = _load_api_key(secret)
            except DatabaseError:
                self._database_down = True
                if cached is None:
                    raise
                self._entries[cache_key] = (now + OUTAGE_RETRY_SECONDS, cached[1])
                return self._last_answer(cache_key, cached)
            self._store(cache_key, now, caller, expires)
            return caller
        finally:
            lock.release()
            self._loading.pop(cache_key, None)

    def _store(self, cache_key: str, loaded_at: float, caller: Caller | None, expires: float) -> None:
        self._database_down = False
        if len(self._entries) > 100_000:
            self._entries.clear()
            self._expires.clear()
        # From before the load: a key revoked meanwhile is refused within KEY_CACHE_SECONDS still.
        self._entries[cache_key] = (loaded_at + KEY_CACHE_SECONDS, caller)
        self._expires[cache_key] = expires

    def _last_answer(self, cache_key: str, cached: tuple[float, Caller | None] | None) -> Caller | None:
        """A known key's answer from its last load, while a newer one cannot be had: none once it expired."""
        assert cached is not None
        return cached[1] if time.time() < self._expires.get(cache_key, float("inf")) else None


def _load_api_key(secret: str) -> tuple[Caller | None, float]:
    """The key's caller (None: no such active key) and when it expires (epoch seconds)."""
    key = api_key_authenticate(secret=secret)
    if key is None:
        return None, float("inf")
    api_key_touch(api_key=key)
    expires_at: datetime | None = key.expires_at
    caller = Caller(
        workspace_id=key.workspace_id,
        workspace_locked=key.workspace.is_locked,
        api_key_id=key.pk,
        allowed_models=frozenset(key.allowed_models),
        rate_limit_rpm=key.rate_limit_rpm,
        source="api",
        limit_micro_usd=key.limit_micro_usd,
        limit_reset=key.limit_reset,
    )
    return caller, float("inf") if expires_at is None else expires_at.timestamp()


key_cache = KeyCache()


def _secret(headers: dict[bytes, bytes]) -> str | None:
    return key_from_headers(
        authorization=headers.get(b"authorization", b"").decode("latin-1"),
        x_api_key=headers.get(b"x-api-key", b"").decode("latin-1"),
    )


def authenticate(headers: dict[bytes, bytes]) -> Caller:
    """The caller, or ApiError(invalid_api_key / workspace_locked). May query the database: runs in a worker
    thread."""
    secret = _secret(headers)
    if secret is None:
        raise ApiError(ErrorCode.INVALID_API_KEY, "Missing API key: send Authorization: Bearer <key>.")
    return _admitted(
        _redeem_playground_key(secret) if is_playground_key(secret) else key_cache.lookup(secret)
    )


def authenticate_from_memory(headers: dict[bytes, bytes]) -> Caller | None:
    """`authenticate`'s answer when the cache has the key fresh (its digest taken once, for the check and the
    answer); None when the database would be asked (a key not cached, or stale; a playground key, always
    redeemed; no key at all, refused by `authenticate`)."""
    secret = _secret(headers)
    if secret is None or is_playground_key(secret):
        return None
    known, caller = key_cache.fresh(secret)
    return _admitted(caller) if known else None


def key_is_known(headers: dict[bytes, bytes]) -> bool:
    """Whether the cache holds an answer for the request's key, fresh or not (a key loaded before)."""
    secret = _secret(headers)
    return secret is not None and not is_playground_key(secret) and key_cache.knows(secret)


def _admitted(caller: Caller | None) -> Caller:
    if caller is None:
        raise ApiError(ErrorCode.INVALID_API_KEY, "Invalid, revoked or expired API key.")
    if caller.workspace_locked:
        raise ApiError(ErrorCode.WORKSPACE_LOCKED, "This workspace is locked; contact support.")
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
