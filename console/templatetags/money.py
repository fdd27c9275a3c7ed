from django import template

from billing.money import format_usd, micro_to_usd

register = template.Library()


@register.filter
def usd(micro: int | None) -> str:
    """Micro-USD as dollars: cents for ordinary amounts, up to 6 decimals for sub-cent ones."""
    if micro is None:
        return "—"
    if micro != 0 and abs(micro) < 10_000:
        return format_usd(micro, 6).rstrip("0")
    return format_usd(micro, 2)


@register.filter
def usd_plain(micro: int | None) -> str:
    """Micro-USD as a plain number of dollars for a form field: 5000000 → "5.00"."""
    return f"{micro_to_usd(micro or 0):.2f}"
