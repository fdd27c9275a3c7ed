"""Micro-USD helpers: integer amounts in, integer amounts out, Decimal only for display and parsing."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billing.errors import InvalidAmount

MICRO_PER_USD = 1_000_000


def usd_to_micro(usd: str | Decimal | int) -> int:
    """Parse USD ("12.50") into micro-USD exactly; more than 6 decimals is an error, never a rounding.

    Raises billing.errors.InvalidAmount (not a ValueError) for anything that is not such an amount.
    """
    try:
        micro = Decimal(str(usd)) * MICRO_PER_USD
    except InvalidOperation as exc:
        raise InvalidAmount(f"not a USD amount: {usd!r}") from exc
    if not micro.is_finite() or micro != micro.to_integral_value():
        raise InvalidAmount(f"USD amounts have at most 6 decimals: {usd!r}")
    return int(micro)


def micro_to_usd(micro: int) -> Decimal:
    return Decimal(micro) / MICRO_PER_USD


def format_usd(micro: int, places: int = 2) -> str:
    """$1,234.57 style, rounded for display only; negative amounts as -$1.00."""
    quantum = Decimal(1).scaleb(-places)
    value = micro_to_usd(abs(micro)).quantize(quantum, rounding=ROUND_HALF_UP)
    return f"{'-' if micro < 0 else ''}${value:,}"
