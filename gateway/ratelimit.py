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
        raise ApiError(ErrorCode.RATE_LIMIT_EXCEEDED, f"This key allows {rpm} requests per minute.")
