"""Keys' rate limits count calendar minutes (gateway/ratelimit.py, the Redis reserve script): two requests
on either side of a minute's turn are in two windows. A test that needs its requests in one window starts
them clear of the turn."""

import time


def a_fresh_minute(margin_seconds: float = 5.0) -> None:
    """Return at once, or, in a window's last `margin_seconds`, just after the next one begins."""
    if time.time() % 60 > 60 - margin_seconds:
        time.sleep(60 - time.time() % 60 + 0.1)
