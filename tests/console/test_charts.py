"""The Usage page's stacked bars: each segment's height is its share of a round scale top, segments of a
bucket stack from the baseline up without gaps, and each says what it is."""

import datetime

import pytest

from console.charts import HEIGHT, stacked_bars

BOTTOM_Y = HEIGHT - 26
DAYS = [datetime.datetime(2026, 12, d, tzinfo=datetime.UTC) for d in (1, 2, 3)]


def chart(series):
    day = lambda d: f"{d:%d}"  # noqa: E731
    return stacked_bars(title="N", bucket_starts=DAYS, series=series, format_value=str, format_bucket=day)


def test_segments_stack_from_the_baseline_in_proportion_to_a_round_top():
    bars = chart([("a", "#111111", [3, 0, 1]), ("b", "#222222", [2, 4, 0])])
    plot = BOTTOM_Y - 10
    by_bucket: dict[float, list] = {}
    for segment in bars.segments:
        by_bucket.setdefault(segment.x, []).append(segment)
    first, second, third = (by_bucket[x] for x in sorted(by_bucket))
    # The peak is 5, so the scale's top is 6: 3 requests are half the plot's height.
    assert first[0].height == pytest.approx(plot * 3 / 6) and first[1].height == pytest.approx(plot * 2 / 6)
    assert first[0].y + first[0].height == pytest.approx(BOTTOM_Y)  # from the baseline
    assert first[1].y + first[1].height == pytest.approx(first[0].y)  # on top, no gap
    assert [s.colour for s in second] == ["#222222"] and len(third) == 1  # zeros draw nothing
    assert first[1].title == "01 · b: 2"
    assert [tick.label for tick in bars.y_ticks] == ["0", "3", "6"]
    assert [tick.label for tick in bars.x_ticks] == ["01", "02", "03"]


def test_an_empty_chart_has_no_segments_and_no_scale_labels():
    bars = chart([("a", "#111111", [0, 0, 0])])
    assert bars.segments == [] and {tick.label for tick in bars.y_ticks} == {""}
