"""The gateway's own ASGI app, mounted ahead of Django's view stack for its paths (design §3-4)."""

import asyncio
import logging
from urllib.parse import parse_qs

from django.conf import settings
from django.db import connection

from billing import mirror
from core.body_limit import with_body_limit
from core.encoding import compact_json
from core.envelopes import openai_error_body
from core.errors import ApiError, ErrorCode
from core.ids import new_request_id
from core.processes import (
    exit_if_still_running,
    exit_with_parent,
    raise_open_files_limit,
    settle_server_heap,
)
from gateway import counting, embeddings, metrics, metrics_scrape, pipeline, tokenizer_api
from gateway.auth import Caller, authenticate
from gateway.http import AsgiApp, Receive, Scope, Send, headers_of, in_thread, request_id_headers, send_json
from gateway.ingress.registry import format_for_path, formats
from gateway.metering import get_meter, writer
from gateway.metering.keeper import loop_journal, stop_keeper
from gateway.metering.redis_meter import close_loop_client
from gateway.openapi import openapi_json
from gateway.outage import in_thread_within, postgres_attempt
from gateway.route_health import start_following, stop_following
from gateway.session import close_upstream_sessions

logger = logging.getLogger(__name__)


async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, b'{"status":"ok"}', [])


# Readiness says what it finds within this; a PostgreSQL that has not answered by then is down to it.
READINESS_POSTGRES_SECONDS = 1.0


def _postgres_check() -> str:
    try:
        # Known down: said at once, not after the pool's timeout (gateway/outage.py).
        with postgres_attempt():
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
    except Exception:
        return "down"
    return "ok"


def _services() -> dict[str, str]:
    checks: dict[str, str] = {}
    if settings.REDIS_URL:
        checks["redis"] = _redis_check()
    if settings.GATEWAY_METER == "redis" and settings.METER_REDIS_URL:
        checks["meter_redis"] = _meter_redis_check()
    return checks


def _redis_check() -> str:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return "down"
    return "ok"


def _meter_redis_check() -> str:
    """The meter's own Redis (or Redis Cluster), when it is not REDIS_URL's."""
    import redis

    try:
        mirror.sync_client().ping()
    except redis.RedisError:
        return "down"
    return "ok"


async def readyz(scope: Scope, receive: Receive, send: Send) -> None:
    database = "postgres" if connection.vendor == "postgresql" else connection.vendor
    postgres = asyncio.create_task(in_thread(_postgres_check))
    services = await in_thread(_services)  # the Redis checks time out in a second themselves
    # A PostgreSQL that stops answering never fails the check: it is down once the time is up (the check's
    # thread stays until its connection gives up: the libpq timeouts of config/settings.py).
    answered, _ = await asyncio.wait({postgres}, timeout=READINESS_POSTGRES_SECONDS)
    checks = {database: postgres.result() if answered else "down", **services}
    report = {"status": "ok" if all(v == "ok" for v in checks.values()) else "degraded", "checks": checks}
    await send_json(send, 200 if report["status"] == "ok" else 503, compact_json(report), [])


def _generation_query(headers: dict[bytes, bytes], query: bytes) -> tuple[Caller, str]:
    """(the caller, the request id asked for); runs in a worker thread. Raises ApiError."""
    caller = authenticate(headers)
    # latin-1 reads any bytes; parse_qs then percent-decodes as UTF-8. `id=` is an id that names nothing.
    values = parse_qs(query.decode("latin-1"), keep_blank_values=True).get("id")
    if not values:
        raise ApiError(ErrorCode.INVALID_REQUEST, "id: required (the X-Request-Id of a request)", param="id")
    # Ids are printable; one with a NUL (which PostgreSQL cannot even compare) names nothing.
    request_id = values[0].strip().removeprefix("gen-")
    return caller, "" if "\x00" in request_id else request_id


async def generation(scope: Scope, receive: Receive, send: Send) -> None:
    own_id = new_request_id()  # this lookup's own request id, in errors and X-Request-Id
    id_headers = request_id_headers(own_id)
    try:
        caller, request_id = await in_thread_within(
            _generation_query, headers_of(scope), scope.get("query_string", b"")
        )
        data = await get_meter().generation(workspace_id=caller.workspace_id, request_id=request_id)
    except ApiError as exc:
        error = openai_error_body(exc.code, exc.message, own_id, exc.param)
        await send_json(send, exc.status, compact_json(error), id_headers)
        return
    except Exception:  # a bug: the envelope, not a bare 500 (the traceback goes to the log)
        logger.exception("generation lookup %s failed", own_id)
        error = openai_error_body(ErrorCode.INTERNAL_ERROR, "The lookup failed; retry.", own_id)
        await send_json(send, 500, compact_json(error), id_headers)
        return
    if data is None:
        # Not found, or another workspace's: the same answer, so ids cannot be probed.
        body = openai_error_body(
            ErrorCode.INVALID_REQUEST, "No generation with this id in your workspace.", own_id, "id"
        )
        await send_json(send, 404, compact_json(body), id_headers)
        return
    await send_json(send, 200, compact_json({"data": data}), id_headers)


# The gateway's own routes; each ingress format adds `POST <its PATH>` (gateway/ingress/registry.py).
FIXED_ROUTES = {
    ("GET", "/api/v1/generation"): generation,
    ("POST", counting.PATH): counting.count_tokens,
    ("POST", embeddings.PATH): embeddings.embeddings,
    ("POST", tokenizer_api.TOKENIZE_PATH): tokenizer_api.tokenize,
    ("POST", tokenizer_api.COUNT_PATH): tokenizer_api.tokenize_count,
    ("POST", tokenizer_api.DETOKENIZE_PATH): tokenizer_api.detokenize,
    ("GET", "/healthz"): healthz,
    ("GET", "/readyz"): readyz,
    ("GET", "/openapi.json"): openapi_json,
    ("GET", "/metrics"): metrics_scrape.scrape,  # for Prometheus, with METRICS_TOKEN
}
FIXED_PATHS = frozenset(path for _, path in FIXED_ROUTES)


def routes() -> dict[tuple[str, str], AsgiApp]:
    """Every (method, path) the gateway app answers."""
    served = {("POST", fmt.PATH): pipeline.handler(fmt) for fmt in formats()}
    return {**served, **FIXED_ROUTES}


def is_gateway_path(path: str) -> bool:
    return path in FIXED_PATHS or format_for_path(path) is not None


def gateway_handler(method: str, path: str) -> AsgiApp | None:
    """The handler of a gateway route, None for a gateway path asked with another method."""
    fmt = format_for_path(path) if method == "POST" else None
    return pipeline.handler(fmt) if fmt is not None else FIXED_ROUTES.get((method, path))


async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    request_id = new_request_id()
    allowed = sorted(method for method, path in routes() if path == scope["path"])
    message = f"{scope['method']} is not allowed on {scope['path']}; {', '.join(allowed)} is."
    body = openai_error_body(ErrorCode.INVALID_REQUEST, message, request_id)
    headers = [(b"allow", ", ".join(allowed).encode()), *request_id_headers(request_id)]
    await send_json(send, 405, compact_json(body), headers)


STORED_RESPONSES = (
    "/api/v1/responses/"  # retrieve, delete, cancel, input_items: the SDK's stored-response calls
)


async def no_stored_responses(scope: Scope, receive: Receive, send: Send) -> None:
    """Responses are not stored here, so a stored response's endpoints answer 404 in the OpenAI envelope."""
    request_id = new_request_id()
    message = "Responses are not stored: this API is stateless, so there is nothing to retrieve or cancel."
    body = openai_error_body(ErrorCode.INVALID_REQUEST, message, request_id, "response_id")
    await send_json(send, 404, compact_json(body), request_id_headers(request_id))


def with_gateway(django_app: AsgiApp) -> AsgiApp:
    """HTTP router: gateway paths to the gateway app, everything else to Django (its bodies limited)."""
    django_app = with_body_limit(django_app)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].rstrip("/")
        if is_gateway_path(path):
            scope = {**scope, "path": path}
            # Awaited here, not through a routing function: every await of a request's task resumes each
            # frame between the server and the handler, so the chain is kept short (bench/README.md).
            await (gateway_handler(scope["method"], path) or method_not_allowed)(scope, receive, send)
        elif scope["path"].startswith(STORED_RESPONSES):
            await no_stored_responses(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app


# After the shutdown's own work, the most the process waits for its threads to end (core/processes.py).
EXIT_GRACE_SECONDS = 5.0


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Start the settlement journal (adopting dead processes' journals) and the metering writer (Redis meter)
    with the server; on shutdown settle what is left, drain the writer, close the pools."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            loop_journal()
            writer.loop_flusher()
            start_following()  # the route cooldowns other processes find (the Redis meter)
            metrics.publish_from_now_on()
            settle_server_heap()
            raise_open_files_limit()  # two sockets a stream: systemd's soft 1,024 is ~500 streams
            exit_with_parent()  # a worker whose supervisor is killed stops too (no orphans)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_keeper(drain_writer=writer.stop_loop_flusher)  # the journal's last pass, the drain
            await stop_following()
            await close_loop_client()
            await close_upstream_sessions()
            exit_if_still_running(EXIT_GRACE_SECONDS)
            await send({"type": "lifespan.shutdown.complete"})
            return
