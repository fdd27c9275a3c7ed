"""The one shape of a request id: 32 hex digits, a random UUID (version 4) without its dashes."""

import os


def new_request_id() -> str:
    """What `uuid.uuid4().hex` gives, without the UUID object it builds and throws away (~0.7 µs here
    against ~2 µs, on every request)."""
    random = bytearray(os.urandom(16))
    random[6] = random[6] & 0x0F | 0x40  # version 4
    random[8] = random[8] & 0x3F | 0x80  # the RFC 4122 variant
    return random.hex()
