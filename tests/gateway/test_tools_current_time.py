"""The `datetime` server tool: the time now in the zone asked for, a clear error for a zone that is none."""

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.tools.base import ToolContext
from gateway.tools.current_time import CurrentTime

NOW = datetime(2026, 12, 3, 9, 30, 5, tzinfo=UTC)


def run(arguments):
    return asyncio.run(CurrentTime(now=lambda: NOW).run(arguments, ToolContext(session=None)))


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {},
            "Thursday, 03 December 2026, 09:30:05 in UTC (ISO 8601: 2026-12-03T09:30:05+00:00; UTC",
        ),
        ({"timezone": "Europe/Paris"}, "Thursday, 03 December 2026, 10:30:05 in Europe/Paris"),
        ({"timezone": "Pacific/Auckland"}, "Thursday, 03 December 2026, 22:30:05 in Pacific/Auckland"),
        ({"timezone": "America/Los_Angeles"}, "Thursday, 03 December 2026, 01:30:05 in America/Los_Angeles"),
    ],
)
def test_the_time_now_in_the_zone_asked_for_is_one_billed_call(arguments, expected):
    outcome = run(arguments)
    assert outcome.text.startswith(expected) and outcome.units == {"call": 1} and not outcome.error


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", 42])
def test_a_zone_that_is_none_is_an_error_the_model_reads_and_costs_nothing(zone):
    outcome = run({"timezone": zone})
    assert outcome.error and outcome.text.startswith("Error: ") and outcome.units == {}
