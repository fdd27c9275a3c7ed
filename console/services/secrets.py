"""Key secrets: random, prefixed, shown once, stored only as a SHA-256 hash.

A plain (unsalted) hash is enough because the secrets carry ~238 bits of randomness, and it lets the
gateway find a key with one indexed lookup (docs/adr/0004-api-key-hashing.md).
"""

import hashlib
import secrets
import string

API_KEY_PREFIX = "hi-"
PLAYGROUND_KEY_PREFIX = "hi-pg-"  # "-" is not in the random alphabet, so the two kinds never collide
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 40
VISIBLE_CHARS = 8  # random characters kept in the displayed prefix


def secret_generate(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_display_prefix(secret: str, prefix: str) -> str:
    return secret[: len(prefix) + VISIBLE_CHARS]
