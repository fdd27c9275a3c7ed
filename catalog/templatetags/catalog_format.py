"""How the catalog pages write numbers: prices per 1M tokens, token counts, context windows, speeds."""

import datetime
from decimal import Decimal

from django import template

from catalog.browse import FEATURE_LABELS

register = template.Library()


@register.filter
def feature_label(code: str) -> str:
    return FEATURE_LABELS.get(code, code.replace("_", " ").capitalize())


@register.filter
def usd_per_m(value: float | int | Decimal | None) -> str:
    """A price in USD per 1M tokens: "$3", "$0.60", "$0.000125"; "—" when there is none."""
    if value is None:
        return "—"
    price = Decimal(str(value))
    if price == price.to_integral_value():
        return f"${int(price)}"
    text = format(price.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def _scaled(value: float, units: tuple[tuple[float, str], ...]) -> str:
    """`units` biggest first; three significant figures at most (13.5K, 131K), never "1000K"."""
    for size, suffix in units:
        if value >= size * 0.9995:
            scaled = value / size
            text = f"{scaled:.1f}" if scaled < 99.95 else f"{scaled:.0f}"
            return text.removesuffix(".0") + suffix
    return f"{value:g}"


@register.filter
def compact(value: int | None) -> str:
    """A token count, short: 950, 12K, 1.2M, 3.4B."""
    if value is None:
        return "—"
    return _scaled(float(value), ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")))


@register.filter
def context_k(value: int) -> str:
    """A context window the way models are described: 131072 → "128K" (binary K when it divides)."""
    if value >= 1024 and value % 1024 == 0:
        return f"{value // 1024}K"
    return compact(value)


@register.filter
def percent(value: float | None) -> str:
    """A 0..1 fraction as a percentage with at most one decimal: 0.9833 → "98.3%"."""
    if value is None:
        return "—"
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


@register.filter
def duration_ms(value: float | None) -> str:
    """Milliseconds, readable: 412 ms, 1.25 s."""
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


@register.filter
def score(value: float | int) -> str:
    """A benchmark score without a float's noise: 83.6, 1250."""
    return f"{value:g}"


@register.filter
def iso_date(value: str) -> datetime.date | None:
    """An ISO date string ("2024-07-23", as the public model carries it) as a date; None when empty."""
    return datetime.date.fromisoformat(value) if value else None
