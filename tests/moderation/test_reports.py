"""POST /api/v1/reports, and what staff do with reports in the admin."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import User
from messaging.models import Message
from moderation.models import Report, ReportStatus, Suspension
from streams.models import Event

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports"


def direct(a, b) -> str:
    return a.client.post("/api/v1/conversations", {"type": "direct", "user_id": str(b.user.pk)},
                         format="json").json()["id"]


def send(user, conversation: str, text: str) -> dict:
    response = user.client.post(f"/api/v1/conversations/{conversation}/messages",
                                {"client_id": str(uuid.uuid4()), "type": "text", "text": text}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def abuse(alice, bob):
    """Bob sent Alice an abusive message."""
    conversation = direct(alice, bob)
    send(alice, conversation, "hello")
    return send(bob, conversation, "you are awful"), conversation


def test_reporting_a_message_files_an_open_report_naming_its_sender(alice, bob, abuse):
    message, _ = abuse
    response = alice.client.post(URL, {"reason": "abuse", "message_id": message["id"], "text": "rude"},
                                 format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "open" and set(body) == {"id", "status"}
    report = Report.objects.get(pk=body["id"])
    assert (report.reporter_id, report.reported_user_id, str(report.message_id)) == (
        alice.user.pk, bob.user.pk, message["id"])
    again = alice.client.post(URL, {"reason": "abuse", "message_id": message["id"]}, format="json")
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    assert Report.objects.count() == 1


def test_reporting_a_user(alice, bob):
    response = alice.client.post(URL, {"reason": "spam", "user_id": str(bob.user.pk)}, format="json")
    assert response.status_code == 201
    assert Report.objects.get().reported_user_id == bob.user.pk


def test_a_message_the_reporter_cannot_see_is_404(alice, bob, carol, abuse):
    message, _ = abuse
    response = carol.client.post(URL, {"reason": "abuse", "message_id": message["id"]}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    for unknown in (str(uuid.uuid4()), "not-an-id"):
        assert carol.client.post(URL, {"reason": "spam", "message_id": unknown}, format="json").status_code == 404
    assert carol.client.post(URL, {"reason": "spam", "user_id": str(uuid.uuid4())}, format="json").status_code == 404
    assert not Report.objects.exists()


@pytest.mark.parametrize("body", [
    {"reason": "spam"},  # neither target
    {"reason": "weird", "user_id": "x"},
    {"reason": "spam", "user_id": "x", "message_id": "y"},  # both
    {"reason": "spam", "user_id": 5},
    {"reason": "spam", "user_id": "x", "text": "t" * 1001},
    {"reason": "spam", "user_id": "x", "unknown": 1},
    ["not", "an", "object"],
])
def test_bad_reports_are_400(alice, body):
    response = alice.client.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


def test_one_cannot_report_oneself_or_ones_own_message(alice, abuse):
    _, conversation = abuse
    own = send(alice, conversation, "mine")
    assert alice.client.post(URL, {"reason": "spam", "message_id": own["id"]}, format="json").status_code == 400
    assert alice.client.post(URL, {"reason": "spam", "user_id": str(alice.user.pk)}, format="json").status_code == 400


def test_reports_need_a_token(api):
    assert api.post(URL, {"reason": "spam", "user_id": str(uuid.uuid4())}, format="json").status_code == 401


# --- The admin ---------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client):
    staff = User.objects.create_superuser(phone="+447911000999", password="pw-for-tests")
    client.force_login(staff)
    return client


def test_staff_see_the_reported_message_with_what_came_before(staff_client, alice, abuse):
    message, _ = abuse
    report_id = alice.client.post(URL, {"reason": "abuse", "message_id": message["id"]}, format="json").json()["id"]
    listing = staff_client.get("/admin/moderation/report/")
    assert listing.status_code == 200 and "abuse" in listing.content.decode()
    page = staff_client.get(f"/admin/moderation/report/{report_id}/change/").content.decode()
    assert "you are awful" in page and "hello" in page and "Spam score" in page


def test_staff_remove_a_reported_message_for_everyone(staff_client, alice, bob, abuse,
                                                      django_capture_on_commit_callbacks):
    message, conversation = abuse
    report_id = alice.client.post(URL, {"reason": "abuse", "message_id": message["id"]}, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/admin/moderation/report/", {
            "action": "remove_reported_messages", "_selected_action": [report_id]})
    assert response.status_code == 302
    stored = Message.objects.get(pk=message["id"])
    assert stored.deleted_at is not None and stored.text == ""
    for user in (alice, bob):
        deleted = Event.objects.filter(user=user.user, type="message.deleted").get()
        assert deleted.data["message_id"] == message["id"] and deleted.data["for"] == "everyone"
    history = alice.client.get(f"/api/v1/conversations/{conversation}/messages").json()["messages"]
    assert [m["deleted"] for m in history] == [False, True]
    assert Report.objects.get(pk=report_id).status == ReportStatus.ACTIONED


def test_staff_suspend_the_reported_user_from_a_report(staff_client, alice, bob, abuse):
    message, _ = abuse
    report_id = alice.client.post(URL, {"reason": "abuse", "message_id": message["id"]}, format="json").json()["id"]
    staff_client.post("/admin/moderation/report/", {"action": "suspend_reported_users",
                                                    "_selected_action": [report_id]})
    bob.user.refresh_from_db()
    assert bob.user.suspended_at is not None
    assert Suspension.objects.get(user=bob.user, lifted_at__isnull=True)
    assert Report.objects.get(pk=report_id).status == ReportStatus.ACTIONED
    assert bob.client.get("/api/v1/me").status_code == 401


def test_staff_suspend_and_lift_from_the_suspensions_page(staff_client, bob):
    response = staff_client.post("/admin/moderation/suspension/add/", {"user": str(bob.user.pk), "reason": "spam"})
    assert response.status_code == 302, response.content
    assert bob.client.get("/api/v1/me").status_code == 401
    suspension = Suspension.objects.get(user=bob.user)
    staff_client.post("/admin/moderation/suspension/", {"action": "lift", "_selected_action": [suspension.pk]})
    assert bob.client.get("/api/v1/me").status_code == 200
