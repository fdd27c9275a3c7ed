"""What a workspace's owner is shown while the metering writer flushes: each debit counted once. The writer
commits a batch to PostgreSQL, then takes its costs off the Redis mirror's unflushed figures (CLAIM marks the
hash `flushing`, COMPLETE clears it and bumps `ver`); a display read between the two used to count the batch
twice (seen in CI: a $28 µ request shown as 56)."""

import threading
import time

import pytest
from django.db.models import F

from billing import mirror
from billing.models import CreditAccount, KeySpend
from billing.selectors import account_for, key_spend_seen, workspace_credits
from console.services.keys import api_key_create
from tests.factories import make_user, make_workspace

pytestmark = [
    pytest.mark.redis,
    pytest.mark.ledger_unbalanced,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("meter_redis"),  # the Redis meter on a plain Redis and on a Redis Cluster
]
BATCH = 300  # micro-USD of usage in the batch being flushed


def complete_later(name: str, field: str, seconds: float = 0.1) -> threading.Thread:
    """COMPLETE's effect on one hash, a moment from now: the batch leaves `field`, the flush ends."""

    def complete() -> None:
        time.sleep(seconds)
        pipe = mirror.sync_client().pipeline(transaction=True)
        pipe.hincrby(name, field, -BATCH)
        pipe.hincrby(name, "flushing", -1)
        pipe.hincrby(name, "ver", 1)
        pipe.execute()

    thread = threading.Thread(target=complete)
    thread.start()
    return thread


@pytest.mark.parametrize("read", [account_for, workspace_credits])
def test_a_balance_read_mid_flush_counts_the_batch_once(read):
    workspace = make_workspace(credits_micro_usd=1_000)
    name = mirror.workspace_hash(workspace.pk)
    mirror.sync_client().delete(name)
    # A settled request's 300 is unflushed, its batch claimed, and the writer has committed it already.
    mirror.sync_client().hset(name, mapping={"unfl": BATCH, "flushing": 1, "ver": 7, "held": 0})
    CreditAccount.objects.filter(workspace=workspace).update(balance_micro_usd=F("balance_micro_usd") - BATCH)
    writer = complete_later(name, "unfl")
    try:
        seen = read(workspace_id=workspace.pk)
    finally:
        writer.join()
    assert seen.balance_micro_usd == 1_000 - BATCH
    mirror.sync_client().delete(name)


def test_with_no_flush_under_way_the_unflushed_debits_are_taken_off_at_once():
    workspace = make_workspace(credits_micro_usd=1_000)
    name = mirror.workspace_hash(workspace.pk)
    mirror.sync_client().delete(name)
    mirror.sync_client().hset(name, mapping={"unfl": BATCH, "held": 50, "ver": 3})
    started = time.monotonic()
    seen = account_for(workspace_id=workspace.pk)
    assert (seen.balance_micro_usd, seen.reserved_micro_usd) == (1_000 - BATCH, 50)
    assert time.monotonic() - started < 0.5  # no waiting when nothing is flushing
    mirror.sync_client().delete(name)


def test_a_keys_spend_read_mid_flush_counts_the_batch_once():
    owner = make_user()
    workspace = make_workspace(owner=owner)
    key = api_key_create(workspace=workspace, name="k", created_by=owner).record
    name = mirror.key_hash(workspace.pk, key.pk)
    mirror.sync_client().delete(name)
    mirror.sync_client().hset(name, mapping={"unfl:0": BATCH, "flushing": 1, "ver": 1})
    KeySpend.objects.update_or_create(api_key_id=key.pk, defaults={"lifetime_micro_usd": BATCH})
    writer = complete_later(name, "unfl:0")
    try:
        seen = key_spend_seen(
            workspace_id=workspace.pk, api_key_id=key.pk, limit_micro_usd=None, reset="none"
        )
    finally:
        writer.join()
    assert seen.lifetime_micro_usd == BATCH
    mirror.sync_client().delete(name)
