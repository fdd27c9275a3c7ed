from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.errors import InvalidAmount
from billing.money import usd_to_micro
from console.errors import InvalidField
from console.models import ApiKey, LimitReset, Workspace
from console.selectors import workspace_find
from console.services.keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a workspace and print its secret (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="Workspace slug, id, or its owner's e-mail")
        parser.add_argument("--name", default="cli", help="Key name (default: cli)")
        parser.add_argument("--limit-usd", help="Optional credit limit in USD")
        parser.add_argument("--limit-reset", choices=LimitReset.values, default=LimitReset.NONE)
        parser.add_argument("--rpm", type=int, help="Optional requests-per-minute limit")
        parser.add_argument("--model", action="append", default=[], help="Allow only this model (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            workspace = workspace_find(ref=options["workspace"])
            limit = usd_to_micro(options["limit_usd"]) if options["limit_usd"] else None
            issued = api_key_create(
                workspace=workspace,
                name=options["name"],
                created_by=None,
                limit_micro_usd=limit,
                limit_reset=options["limit_reset"],
                allowed_models=options["model"],
                rate_limit_rpm=options["rpm"],
            )
        except (Workspace.DoesNotExist, InvalidAmount, InvalidField) as exc:
            raise CommandError(str(exc)) from exc
        key = issued.record
        assert isinstance(key, ApiKey)  # api_key_create issues API keys
        self.stderr.write(f"Created key {key.name!r} ({key.prefix}…) for {workspace.slug}.")
        self.stdout.write(issued.secret)
