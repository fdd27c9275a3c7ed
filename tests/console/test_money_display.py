"""Amounts on the dashboard are exact: whole cents as cents, anything finer to the micro-dollar, so no
rounding hides what was spent."""

import pytest

from console.templatetags.money import usd


@pytest.mark.parametrize(
    ("micro", "shown"),
    [
        (0, "$0.00"),
        (1_000_000, "$1.00"),
        (10_000, "$0.01"),
        (999_934, "$0.999934"),
        (66, "$0.000066"),
        (4_500_000, "$4.50"),
        (12_345_600, "$12.3456"),
        (-1_230_000, "-$1.23"),
        (-5, "-$0.000005"),
        (1_234_567_890_001, "$1,234,567.890001"),
        (None, "—"),
    ],
)
def test_amounts_are_shown_exactly(micro, shown):
    assert usd(micro) == shown
