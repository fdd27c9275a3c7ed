"""Operators see the ledger; they change balances only through the ledger service, with a reason."""

from collections.abc import Sequence
from decimal import Decimal
from typing import cast

import stripe
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.errors import InvalidAmount
from billing.models import (
    CreditAccount,
    KeySpend,
    LedgerEntry,
    Payment,
    Reservation,
    StripeCustomer,
    StripeEvent,
    UsageRollup,
)
from billing.money import format_usd, usd_to_micro
from billing.refunds import payment_refund
from billing.services import credits_adjust


class ActionForm(forms.Form):
    """The input an admin action asks for (render_action_form); its title heads the page."""

    title: str


class AdjustmentForm(ActionForm):
    title = "Adjust credits"
    amount_usd = forms.DecimalField(
        label="Amount (USD)",
        max_digits=14,
        decimal_places=6,
        help_text="Positive adds credits, negative removes.",
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_amount_usd(self) -> Decimal:
        amount = self.cleaned_data["amount_usd"]
        if amount == 0:
            raise ValidationError("The amount cannot be zero.")
        return amount


# Workspaces are console's (above billing), so they are plain models here.
def adjust_credits_for(
    modeladmin: admin.ModelAdmin, request: HttpRequest, workspaces: Sequence[Model], action_name: str
) -> HttpResponse | None:
    """The admin's credit adjustment: a form with a required reason, then one ledger entry per workspace."""
    if "apply" in request.POST:
        form = AdjustmentForm(request.POST)
        if form.is_valid():
            micro = usd_to_micro(form.cleaned_data["amount_usd"])
            for workspace in workspaces:
                credits_adjust(
                    workspace_id=workspace.pk,
                    amount_micro_usd=micro,
                    reason=form.cleaned_data["reason"],
                    # The admin serves signed-in staff only: never an AnonymousUser.
                    created_by=cast(AbstractBaseUser, request.user),
                )
            modeladmin.message_user(
                request,
                f"Adjusted {len(workspaces)} workspace(s) by {format_usd(micro, 6)}.",
                messages.SUCCESS,
            )
            return None
    else:
        form = AdjustmentForm()
    return render_action_form(
        modeladmin,
        request,
        form=form,
        items=[str(workspace) for workspace in workspaces],
        action_name=action_name,
        intro="Each adjustment is a ledger entry with your name and the reason; balances are never edited.",
        submit_label="Apply adjustment",
    )


def render_action_form(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    form: ActionForm,
    items: Sequence[str],
    action_name: str,
    intro: str,
    submit_label: str,
) -> HttpResponse:
    """The second step of an admin action that needs input (admin/confirm_action.html), naming the `items`
    it applies to."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": form.title,
        "form": form,
        "items": items,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_name": action_name,
        "intro": intro,
        "submit_label": submit_label,
    }
    return render(request, "admin/confirm_action.html", context)


@admin.action(description="Adjust credits (through the ledger, with a reason)")
def adjust_credits(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[CreditAccount]
) -> HttpResponse | None:
    workspaces = [account.workspace for account in queryset.select_related("workspace")]
    return adjust_credits_for(modeladmin, request, workspaces, "adjust_credits")


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    list_display = ("workspace", "balance", "reserved", "available")
    search_fields = ("workspace__slug", "workspace__name", "workspace__memberships__user__email")
    readonly_fields = ("workspace", "balance_micro_usd", "reserved_micro_usd")
    actions = [adjust_credits]

    @admin.display(description="Balance", ordering="balance_micro_usd")
    def balance(self, obj: CreditAccount) -> str:
        return format_usd(obj.balance_micro_usd, 6)

    @admin.display(description="Reserved")
    def reserved(self, obj: CreditAccount) -> str:
        return format_usd(obj.reserved_micro_usd, 6)

    @admin.display(description="Available")
    def available(self, obj: CreditAccount) -> str:
        return format_usd(obj.available_micro_usd, 6)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts open with their workspace

    def has_delete_permission(self, request: HttpRequest, obj: CreditAccount | None = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "workspace",
        "kind",
        "amount",
        "balance_after",
        "reason",
        "reference",
        "created_by",
    )
    list_filter = ("kind", "created_at")
    search_fields = ("workspace__slug", "workspace__name", "reference", "reason")
    date_hierarchy = "created_at"
    list_select_related = ("workspace", "created_by")

    @admin.display(description="Amount", ordering="amount_micro_usd")
    def amount(self, obj: LedgerEntry) -> str:
        return format_usd(obj.amount_micro_usd, 6)

    @admin.display(description="Balance after")
    def balance_after(self, obj: LedgerEntry) -> str:
        return format_usd(obj.balance_after_micro_usd, 6)


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = (
        "request_id",
        "workspace",
        "api_key",
        "amount_micro_usd",
        "status",
        "actual_cost_micro_usd",
        "created_at",
        "expires_at",
    )
    list_filter = ("status", "created_at")
    search_fields = ("request_id", "workspace__slug")
    list_select_related = ("workspace", "api_key")


class KeySpendInline(admin.StackedInline):
    """An API key's spend against its limit, on the key's admin page; read-only (billing changes it)."""

    model = KeySpend
    can_delete = False
    readonly_fields = ("period_start", "used_micro_usd", "reserved_micro_usd", "lifetime_micro_usd")

    # The parent is console's ApiKey (above billing): a plain model here.
    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(KeySpend)
class KeySpendAdmin(ReadOnlyAdmin):
    list_display = ("api_key", "used_micro_usd", "reserved_micro_usd", "lifetime_micro_usd", "period_start")
    list_filter = ("period_start",)
    search_fields = ("api_key__name", "api_key__prefix", "api_key__workspace__slug")
    list_select_related = ("api_key",)


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    """The rollups the dashboard and catalog read; written only by the rollup task (gateway/rollups.py)."""

    list_display = (
        "bucket_start",
        "period",
        "workspace",
        "api_key",
        "model",
        "provider",
        "status",
        "requests",
        "tokens_prompt",
        "tokens_completion",
        "cost",
    )
    list_filter = ("period", "status", "provider", "bucket_start")
    search_fields = ("model", "workspace__slug", "workspace__name", "api_key__prefix")
    date_hierarchy = "bucket_start"
    list_select_related = ("workspace", "api_key")

    @admin.display(description="Cost", ordering="cost_micro_usd")
    def cost(self, obj: UsageRollup) -> str:
        return format_usd(obj.cost_micro_usd, 6)


# --- Money in ------------------------------------------------------------------------------------
class RefundForm(ActionForm):
    title = "Refund payments through Stripe"
    amount_usd = forms.DecimalField(
        label="Amount (USD)",
        required=False,
        max_digits=10,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text="Empty: whatever is left of each payment. The card is refunded by Stripe; a refund entry "
        "takes the credits back (the balance may go below zero).",
    )


@admin.action(description="Refund through Stripe")
def refund_payments(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Payment]
) -> HttpResponse | None:
    if "apply" in request.POST:
        form = RefundForm(request.POST)
        if form.is_valid():
            amount = form.cleaned_data["amount_usd"]
            refunded = 0
            for payment in queryset:
                left = payment.amount_micro_usd - payment.refunded_micro_usd
                micro = usd_to_micro(amount) if amount is not None else left
                try:
                    payment_refund(
                        payment=payment, amount_micro_usd=micro, by=cast(AbstractBaseUser, request.user)
                    )
                except (InvalidAmount, stripe.StripeError) as exc:
                    modeladmin.message_user(request, f"{payment.payment_intent_id}: {exc}", messages.ERROR)
                    continue
                refunded += 1
            modeladmin.message_user(request, f"Refunded {refunded} payment(s).", messages.SUCCESS)
            return None
    else:
        form = RefundForm()
    return render_action_form(
        modeladmin,
        request,
        form=form,
        items=[f"{p.payment_intent_id}: {format_usd(p.amount_micro_usd)} ({p.workspace})" for p in queryset],
        action_name="refund_payments",
        intro="Each refund goes through Stripe; the ledger records it with your name. No balance is edited.",
        submit_label="Refund",
    )


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "workspace",
        "kind",
        "amount",
        "status",
        "card",
        "refunded",
        "payment_intent_id",
    )
    list_filter = ("status", "kind", "created_at")
    search_fields = ("payment_intent_id", "charge_id", "workspace__slug", "workspace__name", "card_last4")
    date_hierarchy = "created_at"
    list_select_related = ("workspace",)
    actions = [refund_payments]

    @admin.display(description="Amount", ordering="amount_micro_usd")
    def amount(self, obj: Payment) -> str:
        return format_usd(obj.amount_micro_usd)

    @admin.display(description="Refunded", ordering="refunded_micro_usd")
    def refunded(self, obj: Payment) -> str:
        return format_usd(obj.refunded_micro_usd) if obj.refunded_micro_usd else ""

    @admin.display(description="Card")
    def card(self, obj: Payment) -> str:
        return f"{obj.card_brand} •••• {obj.card_last4}" if obj.card_last4 else ""


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "type", "event_id", "processed_at", "error")
    list_filter = ("type", "received_at")
    search_fields = ("event_id", "type")
    date_hierarchy = "received_at"


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("workspace", "customer_id", "card_brand", "card_last4", "auto_top_up", "created_at")
    list_filter = ("auto_top_up",)
    search_fields = ("customer_id", "workspace__slug", "workspace__name")
    list_select_related = ("workspace",)
