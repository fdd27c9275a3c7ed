"""Retry the settled records PostgreSQL refused (logged CRITICAL by the metering writer) once the cause is
fixed: they go back to the writers' queue. Their charges never left the Redis mirror, so nothing is lost."""

from typing import Any, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import mirror


class Command(BaseCommand):
    help = "Put the metering records PostgreSQL refused back in the writers' queue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--list", action="store_true", dest="only_list", help="only print them")

    def handle(self, *args: Any, only_list: bool = False, **options: Any) -> None:
        if settings.GATEWAY_METER != "redis":
            raise CommandError("GATEWAY_METER is not redis: there is no metering queue")
        client = mirror.sync_client()
        moved = 0
        for shard in mirror.shards():  # each shard's dead letters go back to that shard's queue
            if only_list:
                for item in cast("list[bytes]", client.lrange(mirror.dead(shard), 0, -1)):  # not decoded
                    self.stdout.write(item.decode())
                continue
            while client.lmove(mirror.dead(shard), mirror.queue(shard), "LEFT", "RIGHT") is not None:
                moved += 1
        if not only_list:
            self.stdout.write(f"requeued {moved} records")
