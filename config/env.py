"""Small, typed readers for the environment variables that configure HyperInfer."""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def usd_to_micro(name: str, default: str) -> int:
    """Read a USD amount such as "1.50" as integer micro-USD, without float rounding."""
    from decimal import Decimal, InvalidOperation

    raw = os.environ.get(name, default)
    try:
        micro = Decimal(raw) * 1_000_000
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name} must be a USD amount like 1.50, got {raw!r}") from exc
    if micro != micro.to_integral_value() or micro < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative USD amount with at most 6 decimals")
    return int(micro)
