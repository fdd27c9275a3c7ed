"""The credit ledger. Every amount is an integer number of micro-USD (1 USD = 1,000,000)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class CreditAccount(models.Model):
    """A workspace's balance: the sum of its ledger entries, and what is held for requests in flight.

    Changed only by billing services, each change one conditional UPDATE inside a transaction.
    """

    workspace = models.OneToOneField(
        "console.Workspace", primary_key=True, on_delete=models.CASCADE, related_name="credit_account"
    )
    balance_micro_usd = models.BigIntegerField(default=0)
    reserved_micro_usd = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(reserved_micro_usd__gte=0), name="account_reserved_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"credits of {self.workspace_id}"

    @property
    def available_micro_usd(self) -> int:
        return self.balance_micro_usd - self.reserved_micro_usd


class LimitReset(models.TextChoices):
    """How often an API key's credit limit starts over."""

    NONE = "none", "Never"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class KeySpend(models.Model):
    """What an API key has spent and holds, counted against its credit limit (design §4.1).

    The limit and its reset period are the key's settings (console.ApiKey); billing is told them with each
    hold. Changed only by billing services, each change one conditional UPDATE.
    """

    api_key = models.OneToOneField(
        "console.ApiKey", primary_key=True, on_delete=models.CASCADE, related_name="spend"
    )
    period_start = models.DateTimeField(
        null=True, blank=True, help_text="Start of the limit period `used` counts (null: never resets)."
    )
    used_micro_usd = models.BigIntegerField(default=0, help_text="Spent in the current limit period.")
    reserved_micro_usd = models.BigIntegerField(default=0, help_text="Held by requests in flight.")
    lifetime_micro_usd = models.BigIntegerField(default=0, help_text="Lifetime spend through this key.")

    class Meta:
        verbose_name = "key spend"
        constraints = [
            models.CheckConstraint(
                condition=Q(reserved_micro_usd__gte=0), name="keyspend_reserved_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"spend of key {self.api_key_id}"


class EntryKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    GRANT = "grant", "Grant"
    USAGE = "usage", "Usage"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerEntry(models.Model):
    """One signed change of a workspace's balance: credits are positive, debits negative. Append-only."""

    # No index of its own: (workspace, -created_at) below serves it, and every usage debit writes each index.
    workspace = models.ForeignKey(
        "console.Workspace", on_delete=models.PROTECT, related_name="ledger_entries", db_index=False
    )
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount_micro_usd = models.BigIntegerField()
    balance_after_micro_usd = models.BigIntegerField()
    # Idempotency key: the request id for usage, the Stripe object id for purchases, and so on.
    reference = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    api_key = models.ForeignKey(
        "console.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger_entries"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "reference"], condition=~Q(reference=""), name="ledger_unique_reference"
            ),
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micro_usd} µUSD ({self.workspace_id})"


class ReservationStatus(models.TextChoices):
    HELD = "held", "Held"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired (released by the reaper)"


class Reservation(models.Model):
    """Credits held for one request's worst-case cost between `reserve` and `settle`."""

    request_id = models.CharField(max_length=100, unique=True)
    workspace = models.ForeignKey("console.Workspace", on_delete=models.CASCADE, related_name="reservations")
    api_key = models.ForeignKey(
        "console.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="reservations"
    )
    amount_micro_usd = models.BigIntegerField()
    status = models.CharField(
        max_length=10, choices=ReservationStatus.choices, default=ReservationStatus.HELD
    )
    actual_cost_micro_usd = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount_micro_usd__gte=0), name="reservation_non_negative")
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status}"


class UsagePeriod(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


# What a rollup row is per (its dimensions) and what it adds up (its sums).
USAGE_DIMENSIONS = ("workspace_id", "api_key_id", "model", "provider", "status")
USAGE_SUMS = (
    "requests",
    "tokens_prompt",
    "tokens_completion",
    "tokens_reasoning",
    "tokens_cached_prompt",
    "cost_micro_usd",
)


class UsageRollup(models.Model):
    """The usage of one workspace, key, model, provider and outcome in one UTC hour or day.

    Written from generation records by gateway/rollups.py, which recomputes whole periods (idempotent); the
    dashboard's charts and the catalog's token volumes read these instead of the records themselves."""

    period = models.CharField(max_length=4, choices=UsagePeriod.choices)
    bucket_start = models.DateTimeField(help_text="The UTC hour or day the row counts.")
    workspace = models.ForeignKey("console.Workspace", on_delete=models.CASCADE, related_name="usage_rollups")
    api_key = models.ForeignKey(
        "console.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_rollups"
    )
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=10, help_text="The generations' status: completed, failed, cancelled."
    )
    requests = models.PositiveIntegerField(default=0)
    tokens_prompt = models.BigIntegerField(default=0)
    tokens_completion = models.BigIntegerField(default=0)
    tokens_reasoning = models.BigIntegerField(default=0)
    tokens_cached_prompt = models.BigIntegerField(default=0)
    cost_micro_usd = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-bucket_start", "model"]
        indexes = [
            models.Index(fields=["period", "bucket_start"]),
            models.Index(fields=["workspace", "period", "bucket_start"]),
            models.Index(fields=["model", "period", "bucket_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.bucket_start:%Y-%m-%d %H:%M} {self.model} ({self.workspace_id})"


# --- Stripe: money in ------------------------------------------------------------------------
class PaymentKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    AUTO_TOP_UP = "auto_top_up", "Auto top-up"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # created, not confirmed yet (or an off-session charge on its way)
    REQUIRES_ACTION = "requires_action", "Waiting for the card holder (3-D Secure)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class StripeCustomer(models.Model):
    """A workspace's Stripe customer, its saved card, and its auto top-up settings."""

    workspace = models.OneToOneField(
        "console.Workspace", primary_key=True, on_delete=models.CASCADE, related_name="stripe_customer"
    )
    customer_id = models.CharField(max_length=100, unique=True)
    payment_method_id = models.CharField(max_length=100, blank=True, help_text="The saved card, if any.")
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    auto_top_up = models.BooleanField(default=False)
    auto_top_up_threshold_micro_usd = models.BigIntegerField(default=5_000_000)
    auto_top_up_amount_micro_usd = models.BigIntegerField(default=20_000_000)
    low_balance_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the balance fell below the threshold; cleared above it."
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.workspace_id})"


class Payment(models.Model):
    """One card payment for credits: a Stripe PaymentIntent as the workspace sees it."""

    workspace = models.ForeignKey("console.Workspace", on_delete=models.PROTECT, related_name="payments")
    payment_intent_id = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=12, choices=PaymentKind.choices, default=PaymentKind.PURCHASE)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    amount_micro_usd = models.BigIntegerField(help_text="The credits bought; the card is charged the same.")
    refunded_micro_usd = models.BigIntegerField(default=0)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    charge_id = models.CharField(max_length=100, blank=True, db_index=True)
    receipt_url = models.URLField(max_length=500, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_micro_usd__gt=0), name="payment_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.payment_intent_id} {self.status}"


class StripeEvent(models.Model):
    """A webhook event, stored once by its id when it arrives and applied by a Celery task."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=60)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"
