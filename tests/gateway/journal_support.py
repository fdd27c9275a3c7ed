"""The settlement journal's tests' shared pieces: an entry opened as the gateway opens one."""

import uuid

from gateway.canonical import Usage
from gateway.metering import Outcome, Settlement
from gateway.metering.journal import Journal
from tests.factories import key_less_caller
from tests.gateway.redis_meter_support import MODEL

PROMPT_ESTIMATE = 10


def header(request_id: str, workspace_id: uuid.UUID) -> bytes:
    settlement = Settlement(
        request_id=request_id,
        caller=key_less_caller(workspace_id),
        model=MODEL,
        ingress_format="chat_completions",
        streamed=True,
        end_user=None,
        outcome=Outcome(status="completed", usage=Usage(prompt_tokens=0, completion_tokens=0)),
    )
    return settlement.header()


def opened(journal: Journal, workspace_id: uuid.UUID) -> str:
    request_id = uuid.uuid4().hex
    journal.opened(
        request_id=request_id, header=header(request_id, workspace_id), prompt_estimate=PROMPT_ESTIMATE
    )
    return request_id
