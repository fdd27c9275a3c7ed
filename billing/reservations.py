"""Reserve before a request goes upstream, settle after it: the SQL implementation (SQLite and PostgreSQL).

The interface is `reserve`, `settle`, `release` and `reap_expired`. The gateway's SQL meter uses it; the
production hot path uses the Redis meter instead (gateway/metering/, ADR 0006).

- reserve: one conditional UPDATE on the workspace account (and one on the key, when it has a limit)
  holds the worst-case cost, so concurrent requests can never hold more than the balance.
- settle: keyed by the request id and exactly once: the reservation row is locked, and a settled one
  is returned unchanged.
- reap_expired: reservations whose request never settled (a crashed process) are released.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import InsufficientCredits, InvalidAmount, ReservationNotFound
from billing.key_spend import key_spend_charge, key_spend_hold
from billing.models import CreditAccount, EntryKind, LimitReset, Reservation, ReservationStatus
from billing.services import ledger_post


@dataclass(frozen=True)
class Settlement:
    request_id: str
    cost_micro_usd: int
    applied: bool  # False when this call changed nothing (already settled or released)


def reserve(
    *,
    workspace_id: uuid.UUID,
    api_key_id: int | None,
    amount_micro_usd: int,
    request_id: str,
    key_limit_micro_usd: int | None = None,
    key_limit_reset: str = LimitReset.NONE,
) -> Reservation:
    """Hold `amount_micro_usd` of the workspace's credits (and of the key's limit, the key's settings as
    given) for one request.

    Raises InsufficientCredits or KeyLimitExceeded and holds nothing when either cannot afford it.
    Reserving again with the same request id returns the existing reservation.
    """
    if amount_micro_usd < 0:
        raise InvalidAmount("a reservation cannot be negative")
    now = timezone.now()
    existing = Reservation.objects.filter(request_id=request_id).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            held = CreditAccount.objects.filter(
                workspace_id=workspace_id,
                balance_micro_usd__gte=F("reserved_micro_usd") + amount_micro_usd,
            ).update(reserved_micro_usd=F("reserved_micro_usd") + amount_micro_usd)
            if not held:
                raise InsufficientCredits(f"the workspace cannot afford {amount_micro_usd} µUSD")
            if api_key_id is not None:
                key_spend_hold(
                    api_key_id=api_key_id,
                    limit_micro_usd=key_limit_micro_usd,
                    reset=key_limit_reset,
                    amount_micro_usd=amount_micro_usd,
                    now=now,
                )
            return Reservation.objects.create(
                request_id=request_id,
                workspace_id=workspace_id,
                api_key_id=api_key_id,
                amount_micro_usd=amount_micro_usd,
                expires_at=now + timedelta(seconds=settings.RESERVATION_TTL_SECONDS),
            )
    except IntegrityError:
        # The same request id reserved concurrently; ours rolled back whole.
        existing = Reservation.objects.filter(request_id=request_id).first()
        if existing is None:
            raise
        return existing


def settle(*, request_id: str, actual_cost_micro_usd: int, usage: dict[str, Any] | None = None) -> Settlement:
    """Release the reservation and debit the actual cost, exactly once per request id.

    A reservation the reaper already released is still debited (the request did run); one that was
    settled or released before is left as it is.
    """
    if actual_cost_micro_usd < 0:
        raise InvalidAmount("a cost cannot be negative")
    with transaction.atomic():
        reservation = Reservation.objects.select_for_update().filter(request_id=request_id).first()
        if reservation is None:
            raise ReservationNotFound(request_id)
        if reservation.status in (ReservationStatus.SETTLED, ReservationStatus.RELEASED):
            return Settlement(request_id, reservation.actual_cost_micro_usd or 0, applied=False)
        still_held = reservation.amount_micro_usd if reservation.status == ReservationStatus.HELD else 0
        _debit_usage(reservation, actual_cost_micro_usd, still_held, usage or {})
        reservation.status = ReservationStatus.SETTLED
        reservation.actual_cost_micro_usd = actual_cost_micro_usd
        reservation.closed_at = timezone.now()
        reservation.save(update_fields=["status", "actual_cost_micro_usd", "closed_at"])
    return Settlement(request_id, actual_cost_micro_usd, applied=True)


def _debit_usage(reservation: Reservation, cost: int, still_held: int, usage: dict[str, Any]) -> None:
    if cost:
        ledger_post(
            workspace_id=reservation.workspace_id,
            kind=EntryKind.USAGE,
            amount_micro_usd=-cost,
            reference=reservation.request_id,
            api_key_id=reservation.api_key_id,
            metadata=usage,
            release_reserved_micro_usd=still_held,
        )
    elif still_held:
        CreditAccount.objects.filter(workspace_id=reservation.workspace_id).update(
            reserved_micro_usd=F("reserved_micro_usd") - still_held
        )
    if reservation.api_key_id is not None:
        key_spend_charge(
            api_key_id=reservation.api_key_id, released_micro_usd=still_held, cost_micro_usd=cost
        )


def release(*, request_id: str) -> bool:
    """Give back a held reservation without charging (the request failed before costing anything)."""
    return _close_held(request_id=request_id, status=ReservationStatus.RELEASED)


def _close_held(*, request_id: str, status: str) -> bool:
    with transaction.atomic():
        reservation = Reservation.objects.select_for_update().filter(request_id=request_id).first()
        if reservation is None or reservation.status != ReservationStatus.HELD:
            return False
        _debit_usage(reservation, 0, reservation.amount_micro_usd, {})
        reservation.status = status
        reservation.closed_at = timezone.now()
        reservation.save(update_fields=["status", "closed_at"])
    return True


def renew(*, request_ids: Sequence[str], now: datetime | None = None) -> int:
    """The holds of requests still under way kept from the reaper another RESERVATION_TTL_SECONDS (the
    journal's keeper asks, ADR 0028): a request that outlasts the TTL (a reasoning model's long answer, a
    slow model, a slow reader) lost its hold while it ran, and what it held could be spent before it settled.
    Returns how many were renewed; a hold settled or reaped meanwhile is not brought back."""
    expires_at = (now or timezone.now()) + timedelta(seconds=settings.RESERVATION_TTL_SECONDS)
    return Reservation.objects.filter(request_id__in=list(request_ids), status=ReservationStatus.HELD).update(
        expires_at=expires_at
    )


def reap_expired(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Release reservations whose request never settled (design §4.4). Returns how many were released."""
    cutoff = now or timezone.now()
    stale_ids = list(
        Reservation.objects.filter(status=ReservationStatus.HELD, expires_at__lte=cutoff).values_list(
            "request_id", flat=True
        )[:batch_size]
    )
    return sum(
        _close_held(request_id=request_id, status=ReservationStatus.EXPIRED) for request_id in stale_ids
    )
