"""Attempts counted in the shared cache, per key and window: the log-in form against password guessing, the
sign-up form against farming sign-up credits. Fixed windows: the first attempt opens one."""

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Limit:
    scope: str
    attempts: int
    seconds: int


FAILED_LOGINS = Limit("login", attempts=10, seconds=900)  # per e-mail address and per client address
SIGNUPS = Limit("signup", attempts=5, seconds=3600)  # per client address
VERIFICATION_EMAILS = Limit("verify", attempts=3, seconds=3600)  # resent verification links, per user


def _key(limit: Limit, who: str) -> str:
    return f"throttle:{settings.THROTTLE_NAMESPACE}:{limit.scope}:{who.lower()}"


def throttled(*, limit: Limit, who: list[str]) -> bool:
    """Whether any of `who` (an address, an e-mail) has used up its attempts in the current window."""
    return any(cache.get(_key(limit, one), 0) >= limit.attempts for one in who if one)


def throttle_count(*, limit: Limit, who: list[str]) -> None:
    for one in filter(None, who):
        key = _key(limit, one)
        if cache.add(key, 1, limit.seconds):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, limit.seconds)


def throttle_clear(*, limit: Limit, who: list[str]) -> None:
    cache.delete_many([_key(limit, one) for one in who if one])
