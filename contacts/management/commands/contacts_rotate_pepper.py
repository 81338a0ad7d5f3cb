"""Rotate the discovery pepper now (the beat task does it when due).

    python manage.py contacts_rotate_pepper [--force]

Without --force it does what the beat task does: rotate only when the
current pepper is older than CONTACTS_PEPPER_ROTATION_DAYS (or there is
none), finish an interrupted build, and drop indexes past their grace.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from contacts.services import pepper_rotate


class Command(BaseCommand):
    help = "Rotate the contact-discovery pepper (build the new index, switch, drop expired ones)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="Rotate even if the current pepper is not due.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        pepper = pepper_rotate(force=options["force"])
        elapsed = time.monotonic() - started
        if pepper is None:
            self.stdout.write(f"Not due; expired indexes dropped ({elapsed:.1f} s).")
        else:
            self.stdout.write(self.style.SUCCESS(f"Pepper {pepper.pk} is current ({elapsed:.1f} s)."))
