"""`python manage.py ledger_check`: audit the ledger; exits non-zero when anything is off."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.selectors import ledger_verify


class Command(BaseCommand):
    help = ("Verify that every ledger transaction balances, every wallet's cached balance equals the sum of "
            "its entries, and the system accounts agree with top-ups and red packets. Exit status 1 otherwise.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=50, help="Problems listed per check (default 50).")

    def handle(self, *args: Any, **options: Any) -> None:
        report = ledger_verify(limit=options["limit"])
        summary = f"{report.transactions} transactions, {report.entries} entries, {report.wallets} wallets"
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(problem)
            raise CommandError(f"ledger check FAILED: {len(report.problems)} problem(s) in {summary}")
        self.stdout.write(self.style.SUCCESS(f"ledger ok: {summary}"))
