"""An API key's spend against its credit limit: limit periods, holds and charges (design §4.1).

The limit and its reset period are the key's settings (console); every function here is told them. The
counters live in `KeySpend`, changed only here, each change one conditional UPDATE. Both meters use these
rules: the SQL meter through billing.reservations, the Redis meter for its mirror's periods and its batch
writes.
"""

import uuid
from datetime import UTC, datetime, timedelta

from django.db.models import F, Q

from billing import mirror
from billing.errors import KeyLimitExceeded
from billing.models import KeySpend, LimitReset

_RESETTING = frozenset({LimitReset.DAILY, LimitReset.WEEKLY, LimitReset.MONTHLY})


def limit_period_start(reset: str, now: datetime) -> datetime | None:
    """The start (UTC) of the key-limit period that contains `now`; None for a limit that never resets."""
    if reset not in _RESETTING:
        return None  # most keys: no date arithmetic on every request's admission and settlement
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == LimitReset.DAILY:
        return day
    if reset == LimitReset.WEEKLY:
        return day - timedelta(days=day.weekday())
    if reset == LimitReset.MONTHLY:
        return day.replace(day=1)
    return None


def limit_period_key(reset: str, now: datetime) -> str:
    """The limit period containing `now`, as the epoch second of its start ("0": a limit that never resets).

    Names the period in the Redis mirror and in the records the Redis meter queues (ADR 0006)."""
    start = limit_period_start(reset, now)
    return "0" if start is None else str(int(start.timestamp()))


def key_spend_open(*, api_key_id: int) -> None:
    """Make sure the key has its spend row (a new key gets it when issued; this covers any other)."""
    KeySpend.objects.get_or_create(api_key_id=api_key_id)


def key_spend_roll(*, api_key_id: int, reset: str, now: datetime) -> None:
    """Start a new limit period if the current one is over; one statement, no read."""
    start = limit_period_start(reset, now)
    if start is None:
        return
    stale = Q(period_start__isnull=True) | Q(period_start__lt=start)
    KeySpend.objects.filter(Q(api_key_id=api_key_id) & stale).update(used_micro_usd=0, period_start=start)


def key_spend_hold(
    *, api_key_id: int, limit_micro_usd: int | None, reset: str, amount_micro_usd: int, now: datetime
) -> None:
    """Hold `amount_micro_usd` against the key's limit, or raise KeyLimitExceeded holding nothing.

    Call inside the transaction that holds the workspace's credits, so both or neither are held."""
    key_spend_roll(api_key_id=api_key_id, reset=reset, now=now)
    within_limit = Q()
    if limit_micro_usd is not None:
        within_limit = Q(used_micro_usd__lte=limit_micro_usd - amount_micro_usd - F("reserved_micro_usd"))
    holding = KeySpend.objects.filter(Q(api_key_id=api_key_id) & within_limit)
    held = holding.update(reserved_micro_usd=F("reserved_micro_usd") + amount_micro_usd)
    if not held and not KeySpend.objects.filter(api_key_id=api_key_id).exists():
        # A key without its spend row (every key gets one when issued): open it in this period, hold again.
        key_spend_open(api_key_id=api_key_id)
        key_spend_roll(api_key_id=api_key_id, reset=reset, now=now)
        held = holding.update(reserved_micro_usd=F("reserved_micro_usd") + amount_micro_usd)
    if not held:
        raise KeyLimitExceeded("the key's credit limit cannot cover this request")


def key_spend_charge(*, api_key_id: int, released_micro_usd: int, cost_micro_usd: int) -> None:
    """Release a hold and count the actual cost, in the period and for the key's lifetime."""
    changes = {
        "reserved_micro_usd": F("reserved_micro_usd") - released_micro_usd,
        "used_micro_usd": F("used_micro_usd") + cost_micro_usd,
        "lifetime_micro_usd": F("lifetime_micro_usd") + cost_micro_usd,
    }
    if not KeySpend.objects.filter(api_key_id=api_key_id).update(**changes):
        key_spend_open(api_key_id=api_key_id)  # a key without its row (every key gets one when issued)
        KeySpend.objects.filter(api_key_id=api_key_id).update(**changes)


def key_spends_post(
    *, charges: dict[int, list[tuple[str, int]]], resets: dict[int, str], now: datetime
) -> None:
    """The Redis meter's batch writer: each key's charges, as (limit period key, cost), counted at once.

    Every charge adds to the lifetime spend; only those in the key's current period (by its reset setting
    now) add to the period's spend. Keys in a stable order, so concurrent writers cannot deadlock."""
    KeySpend.objects.bulk_create([KeySpend(api_key_id=key) for key in charges], ignore_conflicts=True)
    for api_key_id in sorted(charges):
        reset = resets[api_key_id]
        current = limit_period_key(reset, now)
        lifetime = sum(cost for _, cost in charges[api_key_id])
        in_period = sum(cost for period, cost in charges[api_key_id] if period == current)
        key_spend_roll(api_key_id=api_key_id, reset=reset, now=now)
        KeySpend.objects.filter(api_key_id=api_key_id).update(
            lifetime_micro_usd=F("lifetime_micro_usd") + lifetime,
            used_micro_usd=F("used_micro_usd") + in_period,
        )


def key_spend_restart_period(*, workspace_id: uuid.UUID, api_key_id: int) -> None:
    """The key's reset setting changed: its period spend starts over (the mirror reloads it)."""
    KeySpend.objects.filter(api_key_id=api_key_id).update(used_micro_usd=0, period_start=None)
    mirror.key_invalidate_on_commit(workspace_id, api_key_id)
