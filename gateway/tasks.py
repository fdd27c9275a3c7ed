"""Gateway work for Celery: the Redis meter's queue flushed to PostgreSQL as a backstop of the gateway's
writers, the usage rollups, the catalog's live figures, and the ledger audit. (Settlements a meter could
not take wait in the gateway's own journal, not here: gateway/metering/keeper.py.)"""

import asyncio
import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from catalog.selectors import model_slugs
from catalog.services import FIGURE_DAYS, model_figures_store
from gateway.audit import ledger_audit
from gateway.metering import writer
from gateway.metering.redis_meter import close_loop_client
from gateway.rollups import roll_up_usage
from gateway.selectors import live_figures

logger = logging.getLogger(__name__)


@shared_task(name="gateway.tasks.flush_metering")
def flush_metering() -> int:
    """Write what the Redis meter has settled to PostgreSQL; requeue dead writers' batches; reap holds."""
    if settings.GATEWAY_METER != "redis":
        return 0
    return asyncio.run(_flush())


async def _flush() -> int:
    try:
        await writer.maintain()
        # The ORM runs in a worker thread, never in this event loop (Django refuses it there).
        return await writer.drain()
    finally:
        await close_loop_client()


@shared_task(name="gateway.tasks.roll_up_usage")
def roll_up_usage_task() -> int:
    """Recompute the last hours' usage rollups from generation records (beat: every minute; idempotent)."""
    return roll_up_usage()


@shared_task(name="gateway.tasks.refresh_model_figures")
def refresh_model_figures() -> int:
    """Recompute the catalog's live figures into its snapshot (beat: every minute): volumes from the usage
    rollups, performance from the latest generation records."""
    computed_at = timezone.now()
    figures = live_figures(models=model_slugs(), days=FIGURE_DAYS)
    return model_figures_store(figures=figures, computed_at=computed_at)


@shared_task(name="gateway.tasks.audit_ledger")
def audit_ledger() -> int:
    """The ledger audit on a schedule: each finding is logged as critical (alerting watches for it)."""
    findings = ledger_audit()
    for finding in findings:
        logger.critical("LEDGER AUDIT: %s", finding)
    return len(findings)
