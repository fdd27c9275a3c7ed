"""Management reads for a key holder: the workspace's credits and this key's own settings and usage."""

from django.db.models import Sum
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import EntryKind, LedgerEntry
from billing.money import micro_to_usd
from billing.selectors import account_for
from console.api.authentication import ApiKeyAuthentication
from console.api.errors import request_id_for


def _usd(micro: int | None) -> float | None:
    return None if micro is None else float(micro_to_usd(micro))


class RequestIdMixin:
    """Every response, success or error, carries the request id in `X-Request-Id`."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["X-Request-Id"] = request_id_for(request)
        return response


class KeyApiView(RequestIdMixin, APIView):
    authentication_classes = [ApiKeyAuthentication]


class CreditsView(KeyApiView):
    """GET /api/v1/credits: the workspace's balance, credits added and total usage."""

    def get(self, request):
        workspace_id = request.auth.workspace_id
        account = account_for(workspace_id=workspace_id)
        sums = (
            LedgerEntry.objects.filter(workspace_id=workspace_id)
            .values("kind")
            .annotate(total=Sum("amount_micro_usd"))
        )
        by_kind = {row["kind"]: row["total"] for row in sums}
        usage = -by_kind.get(EntryKind.USAGE, 0)
        credited = account.balance_micro_usd + usage
        return Response(
            {
                "data": {
                    "total_credits": _usd(credited),
                    "total_usage": _usd(usage),
                    "balance": _usd(account.balance_micro_usd),
                    "balance_micro_usd": str(account.balance_micro_usd),
                    "reserved_micro_usd": str(account.reserved_micro_usd),
                    "available_micro_usd": str(account.available_micro_usd),
                    "total_usage_micro_usd": str(usage),
                }
            }
        )


class KeyView(KeyApiView):
    """GET /api/v1/key: this key's name, limit, remaining limit, usage, rate limit and expiry."""

    def get(self, request):
        key = request.auth
        return Response(
            {
                "data": {
                    "name": key.name,
                    "prefix": key.prefix,
                    "workspace": key.workspace.slug,
                    "limit": _usd(key.limit_micro_usd),
                    "limit_reset": key.limit_reset,
                    "limit_remaining": _usd(key.limit_remaining_micro_usd),
                    "usage": _usd(key.usage_micro_usd),
                    "usage_micro_usd": str(key.usage_micro_usd),
                    "rate_limit": {"requests_per_minute": key.rate_limit_rpm},
                    "allowed_models": key.allowed_models,
                    "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                    "created_at": key.created_at.isoformat(),
                }
            }
        )
