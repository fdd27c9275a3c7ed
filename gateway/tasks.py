"""Gateway work for Celery: settlements the gateway could not write in time are retried until they land
(design §4.4), and the Redis meter's queue is flushed to PostgreSQL as a backstop of the gateway's writers."""

import asyncio
import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from catalog.selectors import model_slugs
from catalog.services import FIGURE_DAYS, model_figures_store
from gateway.audit import ledger_audit
from gateway.catalog_cache import catalog_cache
from gateway.metering import Settlement, get_meter, sql, writer
from gateway.metering.redis_meter import close_loop_client
from gateway.selectors import live_figures

logger = logging.getLogger(__name__)


def settle_later(settlement: Settlement) -> None:
    payload = settlement.to_json()
    try:
        settle_generation.apply_async(kwargs={"payload": payload}, countdown=5)
    except Exception:
        # Neither the database nor the broker took it: the log line is the record of last resort.
        logger.critical("UNSETTLED generation, settle by hand: %s", payload)


@shared_task(
    name="gateway.tasks.settle_generation",
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=None,
)
def settle_generation(payload: dict[str, Any]) -> None:
    if isinstance(payload["model"], str):  # queued before settlements carried their prices: today's prices
        model = catalog_cache.get(payload["model"])
        if model is None:
            raise LookupError(f"model {payload['model']} is not in the catalog")
        payload = {**payload, "model": Settlement.model_json(model)}
    settlement = Settlement.from_json(payload)
    if settings.GATEWAY_METER == "sql":
        sql.settle_sync(settlement)
    else:
        asyncio.run(_settle_in_redis(settlement))


async def _settle_in_redis(settlement: Settlement) -> None:
    try:
        await get_meter().settle(settlement)
    finally:
        await close_loop_client()


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


@shared_task(name="gateway.tasks.refresh_model_figures")
def refresh_model_figures() -> int:
    """Recompute the catalog's live figures from generation records into its snapshot (beat: every minute)."""
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
