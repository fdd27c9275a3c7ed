import asyncio
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.processes import settle_server_heap
from gateway.metering import writer


class Command(BaseCommand):
    help = (
        "Write the Redis meter's settled records to PostgreSQL, in batches, until SIGTERM or SIGINT (then "
        "drain the queue and stop). Run it beside gateway processes started with METER_WRITER=process; "
        "several may run at once (each batch is claimed by one)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.GATEWAY_METER != "redis":
            raise CommandError("GATEWAY_METER is sql: that meter writes its own records, there is no queue")
        self.stdout.write("meter writer: writing settled records to PostgreSQL (SIGTERM drains and stops)")
        self.stdout.flush()
        # Its batches make thousands of objects each: without this, the collector walks the whole Django
        # heap every few batches (~6 µs a request of the writer's ~60, bench/README.md).
        settle_server_heap()
        asyncio.run(writer.run_alone())
        self.stdout.write("meter writer: stopped")
