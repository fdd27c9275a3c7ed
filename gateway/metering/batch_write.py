"""One batch of the Redis meter's settled records into PostgreSQL, in one transaction (gateway/metering/
writer.py claims the batch from Redis and completes it there): usage debits, key usage and generation rows,
the request ids already written skipped, so a batch written twice changes nothing."""

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from billing.key_spend import key_spends_post
from billing.selectors import accounts_existing
from billing.services import usage_debits_post
from console.selectors import api_key_resets
from core.bulk import copy_rows
from gateway.metering.top_ups import top_ups_after_commit
from gateway.models import Generation
from gateway.selectors import recorded_request_ids

logger = logging.getLogger(__name__)

# A settled record as the Redis meter queues it: {"ws", "key", "period", "reset", "generation"}.
Record = dict[str, Any]


@dataclass
class Written:
    """What one batch did to PostgreSQL."""

    generations: int = 0
    # Workspaces and (workspace, key)s some of whose records were already in PostgreSQL (a batch written
    # twice): their mirror may have been loaded in between and count those charges twice, so it is reloaded.
    rewritten_workspaces: set[str] = field(default_factory=set)
    rewritten_keys: set[tuple[str, str]] = field(default_factory=set)
    dropped: int = 0
    # Records PostgreSQL refused (bad data): kept aside in Redis for an operator, still counted as unflushed.
    dead: list[Record] = field(default_factory=list)

    def add(self, other: "Written") -> None:
        self.generations += other.generations
        self.rewritten_workspaces |= other.rewritten_workspaces
        self.rewritten_keys |= other.rewritten_keys
        self.dropped += other.dropped
        self.dead += other.dead


def write_batch(records: list[Record]) -> Written:
    """Write settled records to PostgreSQL in one transaction; those already written are skipped.

    If PostgreSQL refuses the batch's data, the records are written one by one, so that one bad record
    cannot hold back the others; the ones refused again come back as `dead`. Other database errors
    (PostgreSQL unreachable) propagate, and the batch is retried whole.
    """
    try:
        return _write(records)
    except (IntegrityError, DataError):
        if len(records) == 1:
            logger.critical(
                "metering: PostgreSQL refused the record %s; kept aside", records[0], exc_info=True
            )
            return Written(dead=records)
    written = Written()
    for record in records:
        written.add(write_batch([record]))
    return written


def _write(records: list[Record]) -> Written:
    written = Written()
    with transaction.atomic():
        request_ids = [record["generation"]["request_id"] for record in records]
        done = recorded_request_ids(request_ids=request_ids)
        workspaces = accounts_existing(workspace_ids={record["ws"] for record in records})
        fresh = []
        for record in records:
            request_id = record["generation"]["request_id"]
            if request_id in done:
                written.rewritten_workspaces.add(record["ws"])
                if record["key"]:
                    written.rewritten_keys.add((record["ws"], record["key"]))
                continue
            if record["ws"] not in workspaces:
                # The workspace was deleted (its ledger with it) while the record waited: nothing to bill.
                logger.warning(
                    "dropping the generation %s of a deleted workspace %s", request_id, record["ws"]
                )
                written.dropped += 1
                continue
            done.add(request_id)
            fresh.append(record)
        key_ids = {int(record["key"]) for record in fresh if record["key"]}
        live_keys = api_key_resets(api_key_ids=key_ids)
        rows = []
        for record in fresh:
            # As the record has them: the workspace id and the times stay text, which PostgreSQL reads as
            # it stores them (parsed into objects, only for psycopg to write them out again, they were a
            # tenth of the writer's CPU).
            row = dict(record["generation"])
            if row["api_key_id"] not in live_keys:
                row["api_key_id"] = None  # the key was deleted meanwhile
            rows.append(row)
        usage_debits_post(
            [
                (
                    row["workspace_id"],
                    row["request_id"],
                    row["api_key_id"],
                    row["cost_micro_usd"],
                    {
                        "model": row["model"],
                        "prompt_tokens": row["tokens_prompt"],
                        "completion_tokens": row["tokens_completion"],
                    },
                )
                for row in rows
            ]
        )
        _add_key_usage(fresh, live_keys)
        copy_rows(Generation, rows)
        top_ups_after_commit(row["workspace_id"] for row in rows if row["cost_micro_usd"] > 0)
        written.generations = len(rows)
    return written


def _add_key_usage(records: list[Record], live_keys: dict[int, str]) -> None:
    """Each charge of a key that still exists, with the limit period it was settled in."""
    charges: dict[int, list[tuple[str, int]]] = {}
    for record in records:
        cost = record["generation"]["cost_micro_usd"]
        key_id = int(record["key"]) if record["key"] else None
        if cost and key_id in live_keys:
            charges.setdefault(key_id, []).append((record["period"], cost))
    key_spends_post(charges=charges, resets=live_keys, now=timezone.now())
