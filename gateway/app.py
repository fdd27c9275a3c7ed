"""The gateway's own ASGI app, mounted ahead of Django's view stack for its paths (DESIGN §3-4)."""

import asyncio
import time
from urllib.parse import parse_qs

from django.conf import settings
from django.db import connection

from billing.models import Reservation, ReservationStatus
from gateway import completions
from gateway.auth import authenticate
from gateway.errors import ErrorCode, GatewayError
from gateway.http import Receive, Send, headers_of, in_thread, send_json
from gateway.ingress.chat_completions import dumps, error_body
from gateway.models import Generation
from gateway.openapi import openapi_json
from gateway.session import close_upstream_session

GENERATION_WAIT_SECONDS = 5.0


async def healthz(scope: dict, receive: Receive, send: Send) -> None:
    await send_json(send, 200, b'{"status":"ok"}', [])


def _readiness() -> dict:
    checks = {}
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["postgres" if connection.vendor == "postgresql" else connection.vendor] = "ok"
    except Exception:
        checks["postgres" if connection.vendor == "postgresql" else connection.vendor] = "down"
    if settings.REDIS_URL:
        checks["redis"] = _redis_check()
    return {"status": "ok" if all(v == "ok" for v in checks.values()) else "degraded", "checks": checks}


def _redis_check() -> str:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return "down"
    return "ok"


async def readyz(scope: dict, receive: Receive, send: Send) -> None:
    report = await in_thread(_readiness)
    await send_json(send, 200 if report["status"] == "ok" else 503, dumps(report), [])


def _generation(headers: dict, query: bytes) -> dict | None:
    caller = authenticate(headers)
    values = parse_qs(query.decode()).get("id")
    if not values or not values[0].strip():
        raise GatewayError(
            ErrorCode.INVALID_REQUEST, "id: required (the X-Request-Id of a request)", param="id"
        )
    request_id = values[0].strip().removeprefix("gen-")
    deadline = time.monotonic() + GENERATION_WAIT_SECONDS
    while True:
        generation = Generation.objects.filter(
            request_id=request_id, workspace_id=caller.workspace_id
        ).first()
        if generation is not None:
            return _generation_data(generation)
        # A request that just finished is settled right after its last byte: wait for it, briefly.
        in_flight = Reservation.objects.filter(
            request_id=request_id, workspace_id=caller.workspace_id, status=ReservationStatus.HELD
        ).exists()
        if not in_flight or time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _generation_data(g: Generation) -> dict:
    data = {
        "id": g.request_id,
        "model": g.model,
        "provider": g.provider,
        "ingress_format": g.ingress_format,
        "source": g.source,
        "streamed": g.streamed,
        "tokens_prompt": g.tokens_prompt,
        "tokens_completion": g.tokens_completion,
        "tokens_reasoning": g.tokens_reasoning,
        "tokens_cached_prompt": g.tokens_cached_prompt,
        "total_cost": g.cost_micro_usd / 1_000_000,
        "cost_micro_usd": str(g.cost_micro_usd),
        "tool_costs_micro_usd": {name: str(cost) for name, cost in g.tool_costs_micro_usd.items()},
        "latency_ms": g.latency_ms,
        "ttft_ms": g.ttft_ms,
        "status": g.status,
        "finish_reason": g.finish_reason,
        "created_at": g.created_at.isoformat(),
    }
    if g.error_code:
        data["error_code"] = g.error_code
    return data


async def generation(scope: dict, receive: Receive, send: Send) -> None:
    try:
        data = await in_thread(_generation, headers_of(scope), scope.get("query_string", b""))
    except GatewayError as exc:
        await send_json(send, exc.status, dumps(error_body(exc.code, exc.message, "", exc.param)), [])
        return
    if data is None:
        # Not found, or another workspace's: the same answer, so ids cannot be probed.
        body = error_body(
            ErrorCode.INVALID_REQUEST, "No generation with this id in your workspace.", "", "id"
        )
        await send_json(send, 404, dumps(body), [])
        return
    await send_json(send, 200, dumps({"data": data}), [])


ROUTES = {
    ("POST", "/api/v1/chat/completions"): completions.handle,
    ("GET", "/api/v1/generation"): generation,
    ("GET", "/healthz"): healthz,
    ("GET", "/readyz"): readyz,
    ("GET", "/openapi.json"): openapi_json,
}
GATEWAY_PATHS = frozenset(path for _, path in ROUTES)


async def gateway_app(scope: dict, receive: Receive, send: Send) -> None:
    handler = ROUTES.get((scope["method"], scope["path"]))
    if handler is None:
        body = error_body(
            ErrorCode.INVALID_REQUEST, f"{scope['method']} is not allowed on {scope['path']}.", ""
        )
        await send_json(send, 405, dumps(body), [])
        return
    await handler(scope, receive, send)


def with_gateway(django_app):
    """HTTP router: gateway paths to the gateway app, everything else to Django."""

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        if scope["path"].rstrip("/") in GATEWAY_PATHS:
            scope = {**scope, "path": scope["path"].rstrip("/")}
            await gateway_app(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app


async def lifespan(scope: dict, receive: Receive, send: Send) -> None:
    """Close the upstream connection pool on shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close_upstream_session()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await asyncio.sleep(0)
