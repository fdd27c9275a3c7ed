from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.errors import InvalidAmount, ReasonRequired
from billing.money import format_usd, usd_to_micro
from billing.services import credits_adjust, credits_grant
from console.models import Workspace
from console.selectors import workspace_find


class Command(BaseCommand):
    help = "Add credits to a workspace through the ledger (a grant; a negative amount is an adjustment)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="Workspace slug, id, or its owner's e-mail")
        parser.add_argument(
            "--usd", required=True, help="Amount in USD, e.g. 25 or 0.50 (negative to remove)"
        )
        parser.add_argument("--reason", required=True, help="Why: recorded on the ledger entry")

    def handle(self, *args: Any, **options: Any) -> None:
        reason = options["reason"].strip()
        if not reason:
            raise CommandError("--reason: a reason is required")
        try:
            workspace = workspace_find(ref=options["workspace"])
            micro = usd_to_micro(options["usd"])
            if micro > 0:
                entry = credits_grant(workspace_id=workspace.id, amount_micro_usd=micro, reason=reason)
            else:
                entry = credits_adjust(workspace_id=workspace.id, amount_micro_usd=micro, reason=reason)
        except (Workspace.DoesNotExist, InvalidAmount, ReasonRequired) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{entry.kind} of {format_usd(micro, 6)} to {workspace.slug}; "
            f"balance now {format_usd(entry.balance_after_micro_usd, 6)}"
        )
