"""A request body limit in front of Django's ASGI handler.

Django's handler reads a request's whole body into a temporary file — memory, then disk past
FILE_UPLOAD_MAX_MEMORY_SIZE — before it resolves the URL; DATA_UPLOAD_MAX_MEMORY_SIZE is checked only when
a view reads `request.body` or `request.POST`. So any path, a 404's included, took a body of any size onto
the machine's disk: the disk the settlement journals are on (ADR 0010). Here a body larger than
DATA_UPLOAD_MAX_MEMORY_SIZE (Django's own "too big", 2.5 MB by default) is refused with `payload_too_large`:
at once when its Content-Length says so, else as soon as what has come passes it. The gateway's own paths
have their own limit (GATEWAY_MAX_BODY_BYTES) and do not come through here.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings

from core.envelopes import refused_before_routing
from core.errors import HTTP_STATUS, ErrorCode

Scope = dict[str, Any]  # the ASGI types as gateway/http.py names them
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(send: Send, limit: int) -> None:
    message = f"The request body is larger than {limit} bytes."
    request_id, body = refused_before_routing(ErrorCode.PAYLOAD_TOO_LARGE, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        (b"connection", b"close"),
    ]
    status = HTTP_STATUS[ErrorCode.PAYLOAD_TOO_LARGE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_body_limit(app: AsgiApp) -> AsgiApp:
    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if scope["type"] != "http" or limit is None:
            await app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        try:
            await app(scope, counted, send)
        except _TooLarge:  # raised while Django read the body: nothing was sent yet
            await _refuse(send, limit)

    return limited
