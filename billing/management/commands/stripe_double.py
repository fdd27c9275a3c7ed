import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Without STRIPE_SECRET_KEY: start localstripe (a stateful Stripe double with a fake Stripe.js) on "
        "STRIPE_API_BASE unless it is running, and point its webhooks at this site. `make run` calls it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", default="http://127.0.0.1:8000", help="where this site is served")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.STRIPE_SECRET_KEY:
            self.stdout.write("STRIPE_SECRET_KEY is set: payments go to Stripe, no double started")
            return
        base = settings.STRIPE_API_BASE.rstrip("/")
        if not self._up(base):
            port = base.rsplit(":", 1)[-1]
            log = Path(settings.BASE_DIR) / ".local" / "localstripe.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            store = Path(settings.BASE_DIR) / ".local" / "localstripe.pickle"  # kept across restarts
            subprocess.Popen(
                [sys.executable, "-m", "billing.stripe_double", "--port", port, "--store", str(store)],
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
                cwd=settings.BASE_DIR,
                start_new_session=True,  # outlives this command, as the site's companion
            )
            deadline = time.monotonic() + 20
            while not self._up(base):
                if time.monotonic() > deadline:
                    raise CommandError(f"localstripe did not start on {base}: see {log}")
                time.sleep(0.2)
        webhook = f"{options['site'].rstrip('/')}/stripe/webhook/"
        form = urllib.parse.urlencode({"url": webhook, "secret": settings.STRIPE_WEBHOOK_SECRET}).encode()
        try:
            urllib.request.urlopen(f"{base}/_config/webhooks/hyperinfer", data=form, timeout=10).close()
        except urllib.error.URLError as exc:
            raise CommandError(f"localstripe refused the webhook: {exc}") from exc
        self.stdout.write(f"test mode: localstripe on {base}, webhooks to {webhook}")

    @staticmethod
    def _up(base: str) -> bool:
        try:
            with urllib.request.urlopen(f"{base}/js.stripe.com/v3/", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
