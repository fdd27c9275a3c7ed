"""`make run`'s last step before serving: a demo operator with a workspace and a fresh, ready API key."""

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from billing.money import usd_to_micro
from billing.services import credits_grant
from console.models import ApiKey, User
from console.services.keys import api_key_create, api_key_revoke
from console.services.workspaces import workspace_create

DEMO_EMAIL = "operator@hyperinfer.local"
DEMO_KEY_NAME = "demo (make run)"


class Command(BaseCommand):
    help = "Create (or reuse) the demo operator and workspace, mint a fresh demo API key and print the login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default="8000")
        parser.add_argument(
            "--credentials-file",
            default=str(Path(settings.BASE_DIR) / ".local" / "demo-login.txt"),
            help="Where the demo password is kept between runs (git-ignored, mode 600)",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        password = self._password(Path(options["credentials_file"]))
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_superuser(DEMO_EMAIL, password, name="Demo operator")
        elif not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        # The operator's own address: nothing to verify (an account first made through the sign-up form
        # would otherwise keep the verify banner). The demo credits below stand in for the sign-up grant.
        unverified = User.objects.filter(pk=user.pk, email_verified_at__isnull=True)
        unverified.update(email_verified_at=timezone.now())
        workspace = user.workspaces.order_by("-is_personal", "created_at").first()
        if workspace is None:
            workspace = workspace_create(owner=user, name="Demo workspace", is_personal=True)
        credits_grant(
            workspace_id=workspace.id,
            amount_micro_usd=usd_to_micro("10"),
            reason="Demo credits",
            reference=f"demo:{workspace.id}",
        )
        for old in ApiKey.objects.filter(workspace=workspace, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            api_key_revoke(api_key=old, acting_user=None)
        issued = api_key_create(workspace=workspace, name=DEMO_KEY_NAME, created_by=user)

        base = f"http://127.0.0.1:{options['port']}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"HyperInfer is ready ({_mode()}).",
                    f"  Dashboard:  {base}/   (sign up, or log in as the demo operator)",
                    f"  Admin:      {base}/admin/",
                    f"  Login:      {DEMO_EMAIL}",
                    f"  Password:   {password}",
                    f"  API key:    {issued.secret}   (workspace {workspace.slug}; a new key each run)",
                    "",
                    "  Try it:",
                    f'  curl {base}/api/v1/credits -H "Authorization: Bearer {issued.secret}"',
                    f'  curl {base}/api/v1/key -H "Authorization: Bearer {issued.secret}"',
                    "",
                ]
            )
        )

    def _password(self, path: Path) -> str:
        if path.exists():
            stored = path.read_text().strip()
            if stored:
                return stored
        path.parent.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return password


def _mode() -> str:
    if connection.vendor == "sqlite" and not settings.REDIS_URL:
        return "embedded default: SQLite, in-process cache and tasks"
    database = "PostgreSQL" if connection.vendor == "postgresql" else connection.vendor
    cache = "Redis" if settings.REDIS_URL else "in-process cache"
    return f"{database}, {cache}, the {settings.GATEWAY_METER} meter"
