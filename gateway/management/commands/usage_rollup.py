from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.rollups import LOOKBACK_HOURS, roll_up_usage


class Command(BaseCommand):
    help = (
        f"Recompute the usage rollups from generation records: the last {LOOKBACK_HOURS} hours (what beat "
        "does every minute), or every hour since --since (a backfill, or records that arrived after an "
        "outage)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="an ISO date or time, UTC when it names no offset (2026-11-30)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if options["since"]:
            try:
                since = datetime.fromisoformat(options["since"])
            except ValueError as exc:
                raise CommandError(f"--since: not an ISO date or time: {options['since']!r}") from exc
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        rows = roll_up_usage(since=since)
        self.stdout.write(f"usage rollups: {rows} hour rows recomputed")
