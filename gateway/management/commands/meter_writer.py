import asyncio
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.processes import exit_if_still_running, settle_server_heap
from gateway.metering import writer

EXIT_GRACE_SECONDS = 5.0  # after its final drain (itself bounded), the most it waits for its threads


class Command(BaseCommand):
    help = (
        "Write the Redis meter's settled records to PostgreSQL, in batches, until SIGTERM or SIGINT (then "
        "drain the queue and stop). Run it beside gateway processes started with METER_WRITER=process; "
        "several may run at once (each batch is claimed by one)."
    )
    deadline: threading.Timer | None = None  # set once stopped: the exit if threads hold it (core/processes)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.GATEWAY_METER != "redis":
            raise CommandError("GATEWAY_METER is sql: that meter writes its own records, there is no queue")
        self.stdout.write("meter writer: writing settled records to PostgreSQL (SIGTERM drains and stops)")
        self.stdout.flush()
        # Its batches make thousands of objects each: without this, the collector walks the whole Django
        # heap every few batches (~6 µs a request of the writer's ~60, bench/README.md).
        settle_server_heap()
        asyncio.run(self.run_until_stopped())
        self.stdout.write("meter writer: stopped")
        if self.deadline is not None:
            self.deadline.cancel()  # out of asyncio.run in time

    async def run_until_stopped(self) -> None:
        await writer.run_alone()
        # Stopped: asyncio.run's own exit joins the executor's threads, which a PostgreSQL that does not
        # answer holds for good (core/processes.py).
        self.deadline = exit_if_still_running(EXIT_GRACE_SECONDS)
