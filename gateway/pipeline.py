"""The gateway's one request pipeline, for every ingress format (design §3): admit (auth, model, limits,
reserve: gateway/admission.py), run upstream and respond in the caller's format (gateway/run.py; a stream's
events in batches: gateway/answer_flow.py), settle (gateway/settlement.py). `handler(fmt)` is the ASGI
handler of a format (gateway/ingress/base.py says what a format provides)."""

import contextlib
import functools
import logging
import time
from dataclasses import replace

from core.encoding import compact_json
from core.errors import ApiError, ErrorCode
from core.hot_settings import hot
from core.ids import new_request_id
from gateway import metrics
from gateway.admission import RECORDED_REFUSALS, admit, record_refusal, reserve
from gateway.endpoint import INTERNAL_MESSAGE
from gateway.http import (
    AsgiApp,
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    refusal_headers,
    request_id_headers,
    send_json,
)
from gateway.ingress.base import IngressFormat
from gateway.metering.keeper import loop_journal
from gateway.metering.writer import loop_flusher
from gateway.models import GenerationStatus
from gateway.run import Run
from gateway.settlement import journal_header, settle

logger = logging.getLogger(__name__)


def handler(fmt: IngressFormat) -> AsgiApp:
    """The ASGI handler of one ingress format: `_handle` with the format bound, no frame of its own (each
    await of the request's task resumes every frame of its chain)."""
    return functools.partial(_handle, fmt)


async def _handle(fmt: IngressFormat, scope: Scope, receive: Receive, send: Send) -> None:
    request_id = new_request_id()
    started = time.monotonic()
    id_headers = request_id_headers(request_id)
    admitted = None
    try:
        body = await read_body(receive, hot.GATEWAY_MAX_BODY_BYTES)
        admitted = await admit(fmt, scope, body)
        await reserve(admitted, request_id)
    except ApiError as exc:
        metrics.refused(fmt.FORMAT, admitted.model.slug if admitted else "", exc.code)
        await send_json(
            send,
            exc.status,
            compact_json(fmt.error_body(exc.code, exc.message, request_id, exc.param)),
            refusal_headers(request_id, exc),
        )
        if admitted is not None and exc.code in RECORDED_REFUSALS:
            await record_refusal(fmt, admitted, request_id, exc, started)
        return
    except ClientGone:
        return
    except Exception:
        # A bug, not the client's fault: the format's envelope with the request id, the traceback in the log.
        logger.exception("request %s failed before it was admitted", request_id)
        metrics.refused(fmt.FORMAT, admitted.model.slug if admitted else "", ErrorCode.INTERNAL_ERROR)
        body = compact_json(fmt.error_body(ErrorCode.INTERNAL_ERROR, INTERNAL_MESSAGE, request_id, None))
        with contextlib.suppress(OSError):
            await send_json(send, ApiError(ErrorCode.INTERNAL_ERROR, "").status, body, id_headers)
        return
    journal = loop_journal()
    loop_flusher()  # started by the lifespan already, except under runserver
    journal.opened(
        request_id=request_id,
        header=journal_header(fmt, admitted, request_id),
        prompt_estimate=admitted.prompt_estimate,
    )
    run = Run(fmt, admitted, request_id, started, receive, send, id_headers, journal)
    try:
        outcome = await run.execute()
    except Exception as exc:
        # A bug must not leave credits held, nor the client without an answer: internal_error in its format
        # (in the stream if one is open), the failure recorded at no charge, the traceback in the log.
        logger.exception("request %s failed", request_id)
        await run.fail_internally()
        outcome = replace(
            run.outcome(GenerationStatus.FAILED),
            error_code=ErrorCode.INTERNAL_ERROR.value,
            error_detail=f"{type(exc).__name__}: {exc}",
        )
    await settle(fmt, admitted, request_id, outcome, journal, journaled=outcome is run.journaled)
