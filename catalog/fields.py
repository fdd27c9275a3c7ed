"""Typed readers for providers.yaml values. Each one fails with the file, entity and field in the message."""

import datetime
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import urlsplit


class CatalogError(Exception):
    """providers.yaml is invalid; the message reads `file: entity.field: problem`."""


@dataclass(frozen=True)
class Where:
    """A location in the file, e.g. `providers.yaml` + `models[x/y].pricing.prompt`."""

    source: str
    path: str = ""

    def child(self, key: str | int) -> "Where":
        if isinstance(key, int):
            return Where(self.source, f"{self.path}[{key}]")
        return Where(self.source, f"{self.path}.{key}" if self.path else key)

    def fail(self, problem: str) -> NoReturn:
        raise CatalogError(
            f"{self.source}: {self.path}: {problem}" if self.path else f"{self.source}: {problem}"
        )


def show(value: Any) -> str:
    """How a bad value is quoted in messages: repr, shortened."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_mapping(
    value: Any, at: Where, *, required: Iterable[str], optional: Iterable[str] = ()
) -> dict[str, Any]:
    required, optional = tuple(required), tuple(optional)
    if not isinstance(value, dict):
        at.fail(f"must be a mapping, got {show(value)}")
    allowed = sorted({*required, *optional})
    for key in value:
        if key not in allowed:
            at.child(str(key)).fail(f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in value:
            at.child(key).fail("required field is missing")
    return value


def read_list(value: Any, at: Where, *, min_items: int = 0) -> list[Any]:
    if not isinstance(value, list):
        at.fail(f"must be a list, got {show(value)}")
    if len(value) < min_items:
        at.fail(f"needs at least {min_items} item{'s' if min_items != 1 else ''}")
    return value


def read_str(
    value: Any, at: Where, *, blank: bool = False, pattern: str | None = None, hint: str = ""
) -> str:
    if not isinstance(value, str):
        at.fail(f"must be a string, got {show(value)}")
    value = value.strip()
    if not value:
        if blank:
            return ""
        at.fail("must not be empty")
    if pattern and not re.fullmatch(pattern, value):
        at.fail(f"must be {hint or 'in the form ' + pattern}, got {show(value)}")
    return value


def read_choice(value: Any, at: Where, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        at.fail(f"must be one of {', '.join(sorted(choices))}, got {show(value)}")
    return value


def read_positive_int(value: Any, at: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        at.fail(f"must be a positive integer, got {show(value)}")
    return value


def read_non_negative_int(value: Any, at: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        at.fail(f"must be a non-negative integer, got {show(value)}")
    return value


def read_decimal(value: Any, at: Where, *, what: str = "a non-negative number") -> Decimal:
    """Prices go through str() so 0.1 in YAML becomes Decimal('0.1'), not the float's binary expansion."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        at.fail(f"must be {what}, got {show(value)}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        at.fail(f"must be {what}, got {show(value)}")
    if not number.is_finite() or number < 0:
        at.fail(f"must be {what}, got {show(value)}")
    return number


def read_number(value: Any, at: Where) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        at.fail(f"must be a number, got {show(value)}")
    return value


def read_url(value: Any, at: Where) -> str:
    url = read_str(value, at)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        at.fail(f"must be an http(s) URL, got {show(url)}")
    return url


def read_date(value: Any, at: Where) -> datetime.date | None:
    # YAML turns an unquoted 2024-07-23 into a date already; a quoted one stays a string.
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        at.fail(f"must be a date YYYY-MM-DD, got {show(value)}")
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    at.fail(f"must be a date YYYY-MM-DD, got {show(value)}")


def read_str_list(value: Any, at: Where, *, pattern: str | None = None, hint: str = "") -> tuple[str, ...]:
    items = read_list(value, at)
    result = tuple(read_str(item, at.child(i), pattern=pattern, hint=hint) for i, item in enumerate(items))
    for i, item in enumerate(result):
        if item in result[:i]:
            at.child(i).fail(f"duplicate value {show(item)}")
    return result


def check_unique_slugs(entities: Iterable[Any], at: Where) -> None:
    seen: dict[str, int] = {}
    for i, entity in enumerate(entities):
        if entity.slug in seen:
            Where(at.source, f"{at.path}[{entity.slug}]").fail(
                f"duplicate slug (entries {seen[entity.slug]} and {i})"
            )
        seen[entity.slug] = i
