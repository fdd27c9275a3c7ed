from django import template

from billing.money import format_usd, micro_to_usd

register = template.Library()


@register.filter
def usd(micro: int | None) -> str:
    """Micro-USD as dollars, exactly: cents when the amount is whole cents, else every micro-dollar
    ($0.999934 stays $0.999934; a rounded "$1.00" would hide what was spent)."""
    if micro is None:
        return "—"
    exact = format_usd(micro, 6)
    return exact[:-4] + exact[-4:].rstrip("0") if micro % 10_000 else format_usd(micro, 2)


@register.filter
def usd_plain(micro: int | None) -> str:
    """Micro-USD as a plain number of dollars for a form field: 5000000 → "5.00"."""
    return f"{micro_to_usd(micro or 0):.2f}"
