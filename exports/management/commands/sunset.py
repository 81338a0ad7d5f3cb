"""`python manage.py sunset`: plan, show or cancel the service's graceful shutdown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import ValidationFailed
from core.sunset import current_schedule, forget_schedule
from exports import services


def _parse_time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    if value.strip().lower() == "now":
        return timezone.now()
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--{option}: {value!r} is not a time; use ISO 8601 like 2030-01-31T12:00:00Z, or 'now'.")
    if timezone.is_naive(parsed):
        raise CommandError(f"--{option}: {value!r} has no time zone; add Z or an offset like +01:00.")
    return parsed


class Command(BaseCommand):
    help = ("Plan the service's sunset: announce to every user, then refuse signups and sends "
            "(read-only), then shut down everything but data export.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--announce-at", help="ISO 8601 time with zone, or 'now'.")
        parser.add_argument("--read-only-at", help="ISO 8601 time with zone; not before --announce-at.")
        parser.add_argument("--shutdown-at", help="ISO 8601 time with zone; not before --read-only-at.")
        parser.add_argument("--message", help="What users are told (max 2000 characters).")
        parser.add_argument("--cancel", action="store_true", help="Call off the sunset in force.")
        parser.add_argument("--status", action="store_true", help="Show the sunset in force and its phase.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["status"]:
            forget_schedule()
            schedule = current_schedule()
            if schedule is None:
                self.stdout.write("No sunset is planned.")
            else:
                self.stdout.write(f"Phase: {schedule.phase()}\nAnnounce: {schedule.announce_at.isoformat()}\n"
                                  f"Read-only: {schedule.read_only_at.isoformat()}\n"
                                  f"Shutdown: {schedule.shutdown_at.isoformat()}\nMessage: {schedule.message}")
            return
        if options["cancel"]:
            cancelled = services.sunset_cancel()
            if cancelled is None:
                raise CommandError("No sunset is in force.")
            self.stdout.write(self.style.SUCCESS(f"Sunset {cancelled.pk} cancelled."))
            return
        missing = [name for name in ("announce_at", "read_only_at", "shutdown_at", "message") if not options[name]]
        if missing:
            raise CommandError("Missing " + ", ".join("--" + name.replace("_", "-") for name in missing) + ".")
        try:
            sunset = services.sunset_schedule(
                announce_at=_parse_time("announce-at", options["announce_at"]),
                read_only_at=_parse_time("read-only-at", options["read_only_at"]),
                shutdown_at=_parse_time("shutdown-at", options["shutdown_at"]),
                message=options["message"],
            )
        except ValidationFailed as exc:
            problems = "; ".join(f"--{field.replace('_', '-')}: {' '.join(messages)}"
                                 for field, messages in exc.details.items())
            raise CommandError(f"Sunset not planned. {problems}") from exc
        self.stdout.write(self.style.SUCCESS(
            f"Sunset {sunset.pk} planned: announce {sunset.announce_at.isoformat()}, read-only "
            f"{sunset.read_only_at.isoformat()}, shutdown {sunset.shutdown_at.isoformat()}."))
