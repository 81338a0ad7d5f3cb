from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from exports.models import Sunset


@pytest.fixture
def operator_client(db) -> Client:
    operator = User.objects.create_superuser(phone="+447700900999", password="operator-pass-123")
    client = Client()
    client.force_login(operator)
    return client


def _form(announce: int, read_only: int, shutdown: int, message: str = "Closing.") -> dict:
    def at(minutes: int) -> dict:
        moment = timezone.localtime(timezone.now() + timedelta(minutes=minutes))
        return {"0": moment.strftime("%Y-%m-%d"), "1": moment.strftime("%H:%M:%S")}

    data = {"message": message}
    for name, minutes in (("announce_at", announce), ("read_only_at", read_only), ("shutdown_at", shutdown)):
        for part, value in at(minutes).items():
            data[f"{name}_{part}"] = value
    return data


@pytest.mark.django_db
def test_admin_plans_a_sunset(operator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post("/admin/exports/sunset/add/", _form(10, 20, 30, "Bye, take your data."))
    assert response.status_code == 302, response.content[:2000]
    sunset = Sunset.objects.get()
    assert sunset.message == "Bye, take your data."


@pytest.mark.django_db
def test_admin_shows_the_error_for_read_only_before_announcement(operator_client):
    response = operator_client.post("/admin/exports/sunset/add/", _form(30, 10, 60))
    assert response.status_code == 200
    assert b"The read-only time must not be before the announcement." in response.content
    assert not Sunset.objects.exists()


@pytest.mark.django_db
def test_admin_lists_exports_read_only(operator_client, alice):
    from exports.models import Export

    Export.objects.create(user=alice.user)
    assert operator_client.get("/admin/exports/export/").status_code == 200
    assert operator_client.get("/admin/exports/export/add/").status_code == 403
