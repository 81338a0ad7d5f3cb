import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from core.sunset import current_phase
from exports.models import Sunset
from tests.exports.conftest import make_sunset


def _iso(minutes: int) -> str:
    return (timezone.now() + timedelta(minutes=minutes)).isoformat()


@pytest.mark.django_db
def test_sunset_command_plans_the_schedule(capsys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("sunset", "--announce-at", _iso(10), "--read-only-at", _iso(20), "--shutdown-at", _iso(30),
                     "--message", "Closing soon; export your data.")
    sunset = Sunset.objects.get()
    assert sunset.message == "Closing soon; export your data."
    assert sunset.announce_at < sunset.read_only_at < sunset.shutdown_at
    assert "planned" in capsys.readouterr().out
    assert current_phase() == "normal"


@pytest.mark.django_db
def test_sunset_command_announce_now_starts_the_announcement(alice, django_capture_on_commit_callbacks):
    from streams.selectors import stream_read

    with django_capture_on_commit_callbacks(execute=True):
        call_command("sunset", "--announce-at", "now", "--read-only-at", _iso(20), "--shutdown-at", _iso(30),
                     "--message", "Closing.")
    assert current_phase() == "announced"
    assert [e["type"] for e in stream_read(user_id=alice.user.pk, after=0, limit=5)[0]] == ["system.announcement"]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "says"), [
    (["--announce-at", "tomorrow", "--read-only-at", "+20", "--shutdown-at", "+30"], "is not a time"),
    (["--announce-at", "2031-01-01T10:00:00", "--read-only-at", "+20", "--shutdown-at", "+30"], "no time zone"),
    (["--announce-at", "+30", "--read-only-at", "+10", "--shutdown-at", "+60"], "read-only time must not be before"),
    (["--announce-at", "-600", "--read-only-at", "+10", "--shutdown-at", "+60"], "in the past"),
    (["--announce-at", "+10", "--read-only-at", "+20"], "Missing --shutdown-at"),
])
def test_sunset_command_refuses_bad_times_clearly(args, says):
    resolved = [_iso(int(value)) if value[:1] in "+-" and value[1:].isdigit() else value for value in args]
    if "--message" not in resolved:
        resolved += ["--message", "Closing."]
    with pytest.raises(CommandError) as caught:
        call_command("sunset", *resolved)
    assert says in str(caught.value)
    assert not Sunset.objects.exists()


@pytest.mark.django_db
def test_sunset_command_status_and_cancel(capsys, django_capture_on_commit_callbacks):
    make_sunset("read_only")
    call_command("sunset", "--status")
    assert "Phase: read_only" in capsys.readouterr().out
    with django_capture_on_commit_callbacks(execute=True):
        call_command("sunset", "--cancel")
    assert current_phase() == "normal"
    with pytest.raises(CommandError, match="No sunset is in force"):
        call_command("sunset", "--cancel")


@pytest.mark.django_db
def test_sunset_command_exits_non_zero_on_bad_input():
    """What an operator's shell sees: a clear message on stderr and a failing exit status."""
    db = settings.DATABASES["default"]
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    result = subprocess.run(
        [sys.executable, "manage.py", "sunset", "--announce-at", _iso(30), "--read-only-at", _iso(10),
         "--shutdown-at", _iso(60), "--message", "x"],
        cwd=Path(settings.BASE_DIR), env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0
    assert "read-only time must not be before the announcement" in result.stderr
