"""Per-key requests-per-minute limits, counted in the shared cache (Redis in production)."""

import time

from django.core.cache import cache

from core.errors import ApiError, ErrorCode


def check_rate_limit(*, api_key_id: int, rpm: int) -> None:
    """Fixed one-minute windows: the n-th request of a window over `rpm` is refused."""
    window = int(time.time() // 60)
    counter = f"hi:rl:{api_key_id}:{window}"
    cache.add(counter, 0, timeout=120)
    try:
        count = cache.incr(counter)
    except ValueError:  # the counter expired between add and incr
        cache.set(counter, 1, timeout=120)
        count = 1
    if count > rpm:
        raise rate_limited(rpm)


def rate_limited(rpm: int, *, now: float | None = None) -> ApiError:
    """The key's limit reached: when its window ends, as Retry-After and X-RateLimit-* say."""
    now = time.time() if now is None else now
    reset = (int(now // 60) + 1) * 60
    headers = (
        ("retry-after", str(max(1, reset - int(now)))),
        ("x-ratelimit-limit", str(rpm)),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", str(reset)),
    )
    return ApiError(
        ErrorCode.RATE_LIMIT_EXCEEDED, f"This key allows {rpm} requests per minute.", headers=headers
    )
