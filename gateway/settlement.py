"""Settlement, the last step of the gateway's pipeline (gateway/pipeline.py), off the response path: the
journal has the outcome first, then the meter bills it; a meter that is down leaves it to the journal's
keeper (design §4.4, ADR 0010). /metrics counts the request either way."""

import logging

from gateway import metrics
from gateway.admission import Admitted
from gateway.ingress.base import IngressFormat
from gateway.metering import Outcome, Settlement, get_meter
from gateway.metering.base import settlement_header
from gateway.metering.journal import Journal

logger = logging.getLogger(__name__)


def journal_header(fmt: IngressFormat, admitted: Admitted, request_id: str) -> tuple[bytes, ...]:
    return settlement_header(
        request_id=request_id,
        caller=admitted.caller,
        model=admitted.model,
        ingress_format=fmt.FORMAT,
        streamed=admitted.request.stream,
        end_user=admitted.request.user,
    )


async def settle(
    fmt: IngressFormat,
    admitted: Admitted,
    request_id: str,
    outcome: Outcome,
    journal: Journal,
    *,
    journaled: bool = False,
) -> None:
    """Off the response path: the client already has its bytes. The journal has the outcome first (a
    completed answer's before its last bytes were sent: `journaled`), so a meter that is down (or a crash
    now) delays the bill and never loses it (design §4.4, ADR 0010)."""
    settlement = Settlement(
        request_id=request_id,
        caller=admitted.caller,
        model=admitted.model,
        ingress_format=fmt.FORMAT,
        streamed=admitted.request.stream,
        end_user=admitted.request.user,
        outcome=outcome,
    )
    if not journaled:
        journal.settling(request_id=request_id, outcome=outcome)
    meter = get_meter()
    try:
        cost = await meter.settle(settlement)
    except Exception as exc:
        logger.warning("settling %s failed (%s); the journal's keeper retries it", request_id, exc)
        journal.refused(request_id=request_id, retry_in=1.0)
        metrics.observe(fmt.FORMAT, admitted.model.slug, outcome, None, journal)
        return
    journal.taken(request_id=request_id, durable=meter.durable)
    metrics.observe(fmt.FORMAT, admitted.model.slug, outcome, cost, journal)
