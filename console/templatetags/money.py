from django import template

from billing.money import format_usd

register = template.Library()


@register.filter
def usd(micro: int | None) -> str:
    """Micro-USD as dollars: cents for ordinary amounts, up to 6 decimals for sub-cent ones."""
    if micro is None:
        return "—"
    if micro != 0 and abs(micro) < 10_000:
        return format_usd(micro, 6).rstrip("0")
    return format_usd(micro, 2)
