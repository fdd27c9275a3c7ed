"""The settlement journal's tests' shared pieces: an entry opened, its hold, a process killed."""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

from billing.models import EntryKind, LedgerEntry
from gateway.canonical import Usage
from gateway.metering import Outcome, Settlement, sql
from gateway.metering.journal import Journal
from gateway.metering.redis_meter import RedisMeter, close_loop_client
from tests.factories import key_less_caller
from tests.gateway.redis_meter_support import MODEL

PROMPT_ESTIMATE = 10


def settlement(request_id: str, workspace_id: uuid.UUID, usage: Usage | None = None) -> Settlement:
    """A completed streamed answer of MODEL for a key-less caller of the workspace."""
    return Settlement(
        request_id=request_id,
        caller=key_less_caller(workspace_id),
        model=MODEL,
        ingress_format="chat_completions",
        streamed=True,
        end_user=None,
        outcome=Outcome(status="completed", usage=usage or Usage(prompt_tokens=0, completion_tokens=0)),
    )


def header(request_id: str, workspace_id: uuid.UUID) -> bytes:
    return settlement(request_id, workspace_id).header()


def opened(journal: Journal, workspace_id: uuid.UUID) -> str:
    request_id = uuid.uuid4().hex
    journal.opened(
        request_id=request_id, header=header(request_id, workspace_id), prompt_estimate=PROMPT_ESTIMATE
    )
    return request_id


def reserve_in_sql(workspace_id: uuid.UUID, request_id: str) -> None:
    sql.reserve_sync(
        caller=key_less_caller(workspace_id),
        model=MODEL,
        request_id=request_id,
        prompt_tokens=PROMPT_ESTIMATE,
        max_tokens=50,
    )


def die(journal: Journal) -> None:
    """What a killed process does to its journal: nothing, but its lock goes with it."""
    os.close(journal.segment.fd)


async def reserved_and_over(
    journal: Journal, meter: RedisMeter, workspace_id: uuid.UUID, usage: Usage, count: int = 3
) -> list[str]:
    """`count` requests opened in the journal, held by the Redis meter, and over (their outcome in the
    journal, none settled yet): their ids."""
    request_ids = [opened(journal, workspace_id) for _ in range(count)]
    caller = key_less_caller(workspace_id)
    for request_id in request_ids:
        await meter.reserve(
            caller=caller, model=MODEL, request_id=request_id, prompt_tokens=10, max_tokens=50
        )
        journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=usage))
    return request_ids


@contextlib.asynccontextmanager
async def redis_refusing(settings) -> AsyncIterator[None]:
    """The loop's meter on a Redis that refuses connections, then on the test's Redis again."""
    good_url = settings.REDIS_URL
    await close_loop_client()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: connection refused
    try:
        yield
    finally:
        await close_loop_client()
        settings.REDIS_URL = good_url


def usage_debits(workspace) -> list[int]:
    """The workspace's usage debits in the ledger, in micro-USD, smallest first."""
    entries = LedgerEntry.objects.filter(kind=EntryKind.USAGE, workspace=workspace)
    return sorted(entry.amount_micro_usd for entry in entries)
