from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway.audit import ledger_audit


class Command(BaseCommand):
    help = (
        "Check every workspace's money: balance = ledger, usage debits = generations' costs, reserved = held "
        "reservations; and that no hold outlived its time to live. Exits 1 naming each difference."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        findings = ledger_audit()
        for finding in findings:
            self.stderr.write(str(finding))
        if findings:
            raise CommandError(f"ledger audit: {len(findings)} finding(s)")
        self.stdout.write("ledger audit: every workspace balances")
