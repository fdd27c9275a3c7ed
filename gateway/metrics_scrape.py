"""`GET /metrics` (design §6, "Metrics"): every gateway process's published figures (gateway/metrics.py)
summed from prometheus_client's multiprocess files, and the Redis meter's backlog read at scrape time in one
pipelined round trip. A scrape blocks on files and Redis, so it runs in a worker thread; with METRICS_TOKEN
unset the endpoint does not exist.
"""

import hmac
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from billing import mirror
from core.encoding import compact_json
from core.envelopes import openai_error_body
from core.errors import ErrorCode
from core.ids import new_request_id
from core.processes import process_alive
from gateway.http import Receive, Scope, Send, headers_of, in_thread, request_id_headers, send_json
from gateway.metrics import publish


@dataclass(frozen=True, slots=True)
class MeterBacklog:
    queued: int  # settled records waiting for a writer
    batches: int  # batches writers have claimed and not finished
    oldest_batch_claimed_at: float | None  # epoch seconds
    dead: int  # records PostgreSQL refused (manage.py metering_requeue_dead)


def meter_backlog() -> MeterBacklog:
    """The Redis meter's queues in every shard, as billing.mirror names them: one pipelined round trip."""
    pipe = mirror.sync_client().pipeline(transaction=False)
    shards = mirror.shards()
    for shard in shards:
        pipe.llen(mirror.queue(shard))
        pipe.zcard(mirror.inflights(shard))
        pipe.zrange(mirror.inflights(shard), 0, 0, withscores=True)
        pipe.llen(mirror.dead(shard))
    replies = pipe.execute()
    per_shard = [replies[index : index + 4] for index in range(0, len(replies), 4)]
    claimed = [float(oldest[0][1]) for _, _, oldest, _ in per_shard if oldest]
    return MeterBacklog(
        queued=sum(int(queued) for queued, _, _, _ in per_shard),
        batches=sum(int(batches) for _, batches, _, _ in per_shard),
        oldest_batch_claimed_at=min(claimed) if claimed else None,
        dead=sum(int(dead) for _, _, _, dead in per_shard),
    )


# The meter's gauges: hyperinfer_meter_<name>.
METER_GAUGES = {
    "redis_up": "Whether the scrape could read the meter's Redis (without it, the other gauges are absent).",
    "queue_depth": "Settled records waiting to be written to PostgreSQL.",
    "batches_in_flight": "Batches writers are writing to PostgreSQL.",
    "writer_lag_seconds": "Age of the oldest batch a writer is still writing (0 when none is).",
    "dead_letters": "Records PostgreSQL refused, awaiting `manage.py metering_requeue_dead`.",
}


class MeterCollector:
    """The meter's backlog, read at scrape time (it is the deployment's, not a process's). The SQL meter
    has none: it bills in the request's own transaction."""

    def collect(self) -> Iterator[Metric]:
        if settings.GATEWAY_METER != "redis":
            return
        try:
            backlog = meter_backlog()
        except Exception:  # Redis down or unreachable: say so, and let the scrape succeed
            yield GaugeMetricFamily("hyperinfer_meter_redis_up", METER_GAUGES["redis_up"], 0)
            return
        claimed = backlog.oldest_batch_claimed_at
        figures = {
            "redis_up": 1.0,
            "queue_depth": backlog.queued,
            "batches_in_flight": backlog.batches,
            "writer_lag_seconds": 0.0 if claimed is None else max(0.0, time.time() - claimed),
            "dead_letters": backlog.dead,
        }
        for name, value in figures.items():
            yield GaugeMetricFamily(f"hyperinfer_meter_{name}", METER_GAUGES[name], value)


@cache
def registry() -> CollectorRegistry:
    scraped = CollectorRegistry()
    MultiProcessCollector(scraped, path=settings.PROMETHEUS_MULTIPROC_DIR)
    scraped.register(MeterCollector())
    return scraped


LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def forget_dead_processes(directory: str) -> None:
    """A dead worker's live gauges (its journal counts) leave the sums; its counters stay, as they must."""
    for name in os.listdir(directory):
        found = LIVE_GAUGE_FILE.fullmatch(name)
        if found and not process_alive(int(found[1])):
            mark_process_dead(int(found[1]), directory)


def exposition() -> bytes:
    """The scrape's body. It blocks (the files, one Redis round trip): run it in a worker thread."""
    publish()  # this process's latest; the others' are at most PUBLISH_SECONDS old
    forget_dead_processes(settings.PROMETHEUS_MULTIPROC_DIR)
    return generate_latest(registry())


def authorized(header: bytes, token: str) -> bool:
    scheme, _, presented = header.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), token.encode())


async def scrape(scope: Scope, receive: Receive, send: Send) -> None:
    """GET /metrics: with METRICS_TOKEN unset it does not exist; else only for `Bearer <METRICS_TOKEN>`."""
    request_id = new_request_id()
    token = settings.METRICS_TOKEN
    if not token:
        body = openai_error_body(ErrorCode.INVALID_REQUEST, "No such endpoint.", request_id)
        await send_json(send, 404, compact_json(body), request_id_headers(request_id))
        return
    if not authorized(headers_of(scope).get(b"authorization", b""), token):
        message = "GET /metrics needs the header Authorization: Bearer <METRICS_TOKEN>."
        body = openai_error_body(ErrorCode.INVALID_API_KEY, message, request_id)
        headers = [(b"www-authenticate", b"Bearer"), *request_id_headers(request_id)]
        await send_json(send, 401, compact_json(body), headers)
        return
    text = await in_thread(exposition)
    headers = [
        (b"content-type", CONTENT_TYPE_LATEST.encode()),
        (b"content-length", str(len(text)).encode()),
        (b"cache-control", b"no-store"),
        *request_id_headers(request_id),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": text})
