"""Stacked bar charts as plain geometry for inline SVG (no script, no SPA): the dashboard's Usage page draws
one per figure — spend, tokens, requests — with a bar per bucket and a segment per series."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 10, 26  # room for the axis labels
# Distinguishable hues for the series, then grey for "other" (bars are not text: no contrast rule).
PALETTE = ("#4f46e5", "#0891b2", "#d97706", "#059669", "#db2777", "#7c3aed", "#65a30d", "#dc2626")
OTHER_COLOUR = "#9ca3af"


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str  # the tooltip: bucket, series and value


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class StackedBars:
    title: str
    segments: list[Segment]
    y_ticks: list[Tick]  # horizontal grid lines, bottom to top
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM


def nice_ceiling(peak: int) -> int:
    """The scale's round top: the smallest of 1, 2, 4, 6 or 8 times a power of ten at or above `peak`."""
    magnitude = 1
    while magnitude * 10 < peak:
        magnitude *= 10
    return next(step * magnitude for step in (1, 2, 4, 6, 8, 10) if step * magnitude >= peak)


def colour_of(index: int, *, is_other: bool) -> str:
    return OTHER_COLOUR if is_other else PALETTE[index % len(PALETTE)]


def stacked_bars(
    *,
    title: str,
    bucket_starts: Sequence[datetime],
    series: Sequence[tuple[str, str, Sequence[int]]],  # (label, colour, value per bucket)
    format_value: Callable[[int], str],
    format_bucket: Callable[[datetime], str],
) -> StackedBars:
    count = len(bucket_starts)
    totals = [sum(values[i] for _, _, values in series) for i in range(count)]
    peak = max(totals, default=0)
    top = nice_ceiling(peak)
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1)
    bar = max(slot * 0.8, 1.0)
    segments = []
    for i, start in enumerate(bucket_starts):
        y = float(HEIGHT - BOTTOM)
        for label, colour, values in series:
            if not values[i]:
                continue
            height = values[i] / top * plot_height
            y -= height
            title_text = f"{format_bucket(start)} · {label}: {format_value(values[i])}"
            segments.append(Segment(LEFT + i * slot + (slot - bar) / 2, y, bar, height, colour, title_text))
    shares = (0.0, 0.5, 1.0) if top % 2 == 0 else (0.0, 1.0)  # a mid line only where it is a whole number
    y_ticks = [
        Tick(HEIGHT - BOTTOM - plot_height * share, format_value(int(top * share)) if peak else "")
        for share in shares
    ]
    labelled = sorted({0, count // 2, count - 1}) if count else []
    x_ticks = [Tick(LEFT + i * slot + slot / 2, format_bucket(bucket_starts[i])) for i in labelled]
    return StackedBars(title, segments, y_ticks, x_ticks)
