"""Buying credits: the Add credits page (card by Stripe.js), its JSON calls, the payments list and receipts,
and Stripe's webhook. Thin: billing/payments.py and billing/stripe_events.py hold the rules."""

import json
import logging

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing.errors import InvalidAmount, PaymentDeclined, PaymentNotFound, WebhookRejected
from billing.models import Payment, PaymentStatus, StripeCustomer
from billing.money import usd_to_micro
from billing.payments import (
    auto_top_up_configure,
    card_setup_start,
    credits_amount,
    payment_refresh,
    payment_start,
    payments_of,
)
from billing.selectors import account_for
from billing.stripe_events import webhook_receive
from console.models import MANAGING_ROLES
from console.services.workspaces import membership_role
from console.tasks import process_stripe_event
from console.views.decorators import WorkspaceRequest, workspace_required

logger = logging.getLogger(__name__)


def _may_pay(request: WorkspaceRequest) -> bool:
    return membership_role(user=request.user, workspace=request.workspace) in MANAGING_ROLES


def _error(status: int, field: str | None, message: str, code: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "param": field, "message": message}}, status=status)


@require_GET
@workspace_required
def credits_add(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    context = {
        "account": account_for(workspace_id=workspace.pk),
        "may_pay": _may_pay(request),
        "presets": settings.CREDITS_PRESETS_USD,
        "minimum": settings.CREDITS_MIN_USD,
        "maximum": settings.CREDITS_MAX_USD,
        "maximum_label": f"{settings.CREDITS_MAX_USD:,}",
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "test_mode": settings.STRIPE_TEST_MODE,
    }
    if context["may_pay"]:
        context["setup_secret"] = card_setup_start(workspace_id=workspace.pk, email=request.user.email)
        context["customer"] = StripeCustomer.objects.filter(workspace=workspace).first()
    return render(request, "console/credits_add.html", context)


@require_POST
@workspace_required
def auto_top_up_settings(request: WorkspaceRequest) -> HttpResponse:
    if not _may_pay(request):
        messages.error(request, "Only an owner or admin of the workspace can change auto top-up.")
        return redirect("console:credits_add")
    try:
        customer = auto_top_up_configure(
            workspace_id=request.workspace.pk,
            enabled=request.POST.get("enabled") == "on",
            threshold_micro_usd=credits_amount_or_zero(request.POST.get("threshold", "")),
            amount_micro_usd=credits_amount_or_zero(request.POST.get("amount", "")),
        )
    except InvalidAmount as exc:
        messages.error(request, str(exc))
        return redirect("console:credits_add")
    state = "on" if customer.auto_top_up else "off"
    messages.success(request, f"Auto top-up is {state}.")
    return redirect("console:credits_add")


def credits_amount_or_zero(value: str) -> int:
    """A dollar amount typed in a settings form, in micro-USD (the service checks its bounds)."""
    try:
        return usd_to_micro(value.strip().lstrip("$") or "0")
    except (InvalidAmount, ValueError):
        raise InvalidAmount(f"{value!r} is not an amount in dollars") from None


@require_POST
@workspace_required
def credits_pay(request: WorkspaceRequest) -> JsonResponse:
    """{amount, payment_method, save_card} → {status, payment_intent, client_secret}; errors name a field."""
    if not _may_pay(request):
        return _error(403, None, "Only an owner or admin of the workspace can buy credits.", "forbidden")
    try:
        body = json.loads(request.body)
        amount = credits_amount(str(body.get("amount", "")))
        payment_method = str(body.get("payment_method") or "")
    except (ValueError, AttributeError):
        return _error(400, None, "The body must be a JSON object.", "invalid_request")
    except InvalidAmount as exc:
        return _error(400, "amount", str(exc).removeprefix("amount: "), "invalid_request")
    if not payment_method.startswith("pm_"):
        return _error(400, "payment_method", "Enter your card first.", "invalid_request")
    try:
        started = payment_start(
            workspace_id=request.workspace.pk,
            email=request.user.email,
            amount_micro_usd=amount,
            payment_method_id=payment_method,
            save_card=bool(body.get("save_card")),
            created_by=request.user,
        )
    except PaymentDeclined as exc:
        return _error(402, "payment_method", str(exc), exc.code)
    payment = started.payment
    return JsonResponse(
        {
            "status": payment.status,
            "payment_intent": payment.payment_intent_id,
            "client_secret": started.client_secret
            if payment.status == PaymentStatus.REQUIRES_ACTION
            else None,
        }
    )


@require_POST
@workspace_required
def credits_refresh(request: WorkspaceRequest, payment_intent_id: str) -> JsonResponse:
    """The browser is back from 3-D Secure: how the payment stands now (credited if it succeeded)."""
    try:
        payment = payment_refresh(workspace_id=request.workspace.pk, payment_intent_id=payment_intent_id)
    except PaymentNotFound:
        return _error(404, None, "No such payment in this workspace.", "not_found")
    message = payment.failure_message or ("" if payment.status != PaymentStatus.FAILED else "Payment failed.")
    return JsonResponse(
        {"status": payment.status, "payment_intent": payment.payment_intent_id, "message": message}
    )


@require_GET
@workspace_required
def payments(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    context = {
        "account": account_for(workspace_id=workspace.pk),
        "payments": payments_of(workspace_id=workspace.pk),
        "paid": request.GET.get("paid", ""),
        "test_mode": settings.STRIPE_TEST_MODE,
    }
    return render(request, "console/payments.html", context)


@require_GET
@workspace_required
def payment_receipt(request: WorkspaceRequest, payment_intent_id: str) -> HttpResponse:
    payment = Payment.objects.filter(workspace=request.workspace, payment_intent_id=payment_intent_id).first()
    if payment is None or payment.status != PaymentStatus.SUCCEEDED:
        raise Http404("no such receipt")
    return render(request, "console/receipt.html", {"payment": payment, "workspace": request.workspace})


@csrf_exempt  # Stripe signs it instead
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = webhook_receive(request.body, request.headers.get("Stripe-Signature", ""))
    except WebhookRejected as exc:
        logger.warning("stripe webhook rejected: %s", exc)
        return HttpResponse("bad signature", status=400, content_type="text/plain")
    if event is not None:
        event_id = event.event_id
        transaction.on_commit(lambda: process_stripe_event.delay(event_id))
    return HttpResponse(status=200)
