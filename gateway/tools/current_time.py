"""The `datetime` server tool: the current date and time, in UTC or an IANA time zone the model names."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.tools.base import ServerTool, ToolContext, ToolOutcome


class CurrentTime(ServerTool):
    name: ClassVar[str] = "datetime"
    description: ClassVar[str] = (
        "The current date and time. Call it whenever the answer depends on today's date or the time now."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "description": "An IANA time zone such as Europe/Paris or America/New_York; UTC when absent.",
            }
        },
        "additionalProperties": False,
    }

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.now = now  # the clock, replaceable in tests

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        name = arguments.get("timezone") or "UTC"
        if not isinstance(name, str):
            return ToolOutcome.failed("timezone must be a string such as Europe/Paris")
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return ToolOutcome.failed(f"{name!r} is not an IANA time zone (e.g. Europe/Paris)")
        local = self.now().astimezone(zone)
        text = (
            f"{local:%A, %d %B %Y, %H:%M:%S} in {name} "
            f"(ISO 8601: {local.isoformat(timespec='seconds')}; UTC offset {local:%z})"
        )
        return ToolOutcome(text=text, units={"call": 1})
