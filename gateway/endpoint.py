"""The shell of the gateway's endpoints that are not ingress formats (token counting, the tokenizer,
embeddings): their admission runs inside `answered`, which turns a refusal into the endpoint's envelope
with its status and headers, a client gone into silence, and a bug into internal_error with the request id
(the traceback in the log), never a bare 500."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core.encoding import compact_json
from core.errors import ApiError, ErrorCode
from gateway import metrics
from gateway.http import ClientGone, Send, refusal_headers, request_id_headers, send_json

logger = logging.getLogger(__name__)
T = TypeVar("T")
# An envelope builder: (code, message, request id, param) → body (core/envelopes.py, a format's error_body).
ErrorBody = Callable[[ErrorCode, str, str, str | None], dict[str, Any]]
INTERNAL_MESSAGE = "The gateway failed on this request and did not bill it: retry, or quote its request id."


async def answered(
    send: Send, request_id: str, error_body: ErrorBody, work: Callable[[], Awaitable[T]]
) -> T | None:
    """`work`'s result, or None once the client has been answered with why not (or is gone)."""
    try:
        return await work()
    except ApiError as exc:
        metrics.endpoint_refused(work, exc.code)
        body = compact_json(error_body(exc.code, exc.message, request_id, exc.param))
        await send_json(send, exc.status, body, refusal_headers(request_id, exc))
    except ClientGone:
        pass
    except Exception:  # a bug: the envelope, not a bare 500, and counted as one
        logger.exception("request %s failed", request_id)
        metrics.endpoint_refused(work, ErrorCode.INTERNAL_ERROR)
        await send_internal_error(send, request_id, error_body)
    return None


async def send_internal_error(send: Send, request_id: str, error_body: ErrorBody) -> None:
    body = compact_json(error_body(ErrorCode.INTERNAL_ERROR, INTERNAL_MESSAGE, request_id, None))
    try:
        await send_json(send, 500, body, request_id_headers(request_id))
    except OSError:
        logger.info("client %s went away before the error", request_id)
