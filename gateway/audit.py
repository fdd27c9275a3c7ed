"""The ledger audit: every micro-dollar accounted for (design §4), read-only.

Per workspace: the balance equals the sum of its ledger entries, its usage debits equal its generations'
costs, and what its account holds equals its held reservations. Across the system: no hold has outlived its
time to live plus the reaper's grace, in PostgreSQL or in the Redis mirror. `manage.py ledger_audit` prints
the findings and exits non-zero; Celery beat runs it and logs each finding as critical.

The sums are read in one snapshot (REPEATABLE READ on PostgreSQL): a settlement committed between two of
them would otherwise show as a difference that does not exist.
"""

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from billing import mirror
from billing.models import CreditAccount, EntryKind, LedgerEntry, Reservation, ReservationStatus
from gateway.models import Generation

# The reapers run every minute (SQL) and every few seconds (Redis): a hold this far past its expiry is stuck.
REAPER_GRACE_SECONDS = 300


@dataclass(frozen=True)
class Finding:
    """One broken invariant: where (a workspace, or the system), what, and by how much (micro-USD)."""

    workspace_id: uuid.UUID | None
    rule: str
    expected: int
    actual: int

    def __str__(self) -> str:
        where = f"workspace {self.workspace_id}" if self.workspace_id else "system"
        difference = self.actual - self.expected
        return f"{where}: {self.rule}: expected {self.expected}, found {self.actual} ({difference:+d})"


def _by_workspace(rows: Iterable[Mapping[str, Any]]) -> dict[uuid.UUID, int]:
    """{workspace id: total} from `.values("workspace_id").annotate(total=Sum(...))` rows."""
    return {row["workspace_id"]: int(row["total"] or 0) for row in rows}


def ledger_audit(*, with_generations: bool = True) -> list[Finding]:
    """The broken invariants, none when the books balance. `with_generations=False` leaves out the rule
    that needs generation records (for ledgers written through the billing services alone)."""
    # Inside a caller's transaction (a test's), its snapshot is the one there is.
    own_snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if own_snapshot:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        findings = _ledger_findings(with_generations)
    return findings + _stuck_holds()


def _ledger_findings(with_generations: bool) -> list[Finding]:
    findings: list[Finding] = []
    ledger = _by_workspace(LedgerEntry.objects.values("workspace_id").annotate(total=Sum("amount_micro_usd")))
    debits = _by_workspace(
        LedgerEntry.objects.filter(kind=EntryKind.USAGE)
        .values("workspace_id")
        .annotate(total=Sum("amount_micro_usd"))
    )
    costs = _by_workspace(Generation.objects.values("workspace_id").annotate(total=Sum("cost_micro_usd")))
    held = _by_workspace(
        Reservation.objects.filter(status=ReservationStatus.HELD)
        .values("workspace_id")
        .annotate(total=Sum("amount_micro_usd"))
    )
    for account in CreditAccount.objects.order_by("workspace_id"):
        workspace = account.workspace_id
        checks = [
            ("balance = sum of ledger entries", ledger.get(workspace, 0), account.balance_micro_usd),
            ("reserved = held reservations", held.get(workspace, 0), account.reserved_micro_usd),
        ]
        if with_generations:
            checks.append(
                ("usage debits = generations' costs", costs.get(workspace, 0), -debits.get(workspace, 0))
            )
        findings += [Finding(workspace, rule, want, got) for rule, want, got in checks if want != got]
    return findings


def _stuck_holds() -> list[Finding]:
    findings: list[Finding] = []
    stuck_before = timezone.now() - timedelta(seconds=REAPER_GRACE_SECONDS)
    stuck = Reservation.objects.filter(status=ReservationStatus.HELD, expires_at__lt=stuck_before).count()
    if stuck:
        findings.append(Finding(None, "reservations held past their time to live", 0, stuck))
    if mirror.mirror_enabled():
        stuck_holds = _stuck_redis_holds(time.time() - REAPER_GRACE_SECONDS)
        if stuck_holds:
            findings.append(Finding(None, "Redis holds past their time to live", 0, stuck_holds))
    return findings


def _stuck_redis_holds(expired_before: float) -> int:
    """The holds of every shard of the mirror that expired before then, counted in one pipelined round."""
    pipe = mirror.sync_client().pipeline(transaction=False)
    for shard in mirror.shards():
        pipe.zcount(mirror.holds(shard), "-inf", expired_before)
    return sum(int(count) for count in pipe.execute())
