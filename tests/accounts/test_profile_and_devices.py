"""Me, public profiles with privacy, devices, push tokens, logout and account deletion."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Device, User
from accounts.services import otp_request, otp_verify
from tests.factories import sign_in

ME = "/api/v1/me"


# --- Authentication ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Token abc", "Bearer " + "x" * 5000],
)
def test_missing_or_garbage_tokens_are_unauthenticated(api, header):
    if header is not None:
        api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


@pytest.mark.django_db
def test_logout_revokes_only_the_calling_device(alice):
    tablet = alice.another_device()
    assert alice.client.post("/api/v1/auth/logout").status_code == 204
    assert alice.client.get(ME).status_code == 401
    assert tablet.client.get(ME).status_code == 200


# --- Me ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_me_returns_private_fields_and_default_settings(api, settings):
    # Signed up the way a client does, so the settings are a new account's defaults.
    settings.OTP_TEST_NUMBERS = ["+1555"]
    api.post("/api/v1/auth/otp/request", {"phone": "+15550100123"}, format="json")
    token = api.post("/api/v1/auth/otp/verify", {"phone": "+15550100123", "code": settings.OTP_TEST_CODE,
                                                  "device": {"name": "P", "platform": "ios"}},
                     format="json").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = api.get(ME).json()
    assert set(body) == {"id", "phone", "display_name", "about", "avatar_url", "created_at", "settings"}
    assert body["phone"] == "+15550100123"
    assert body["created_at"].endswith("Z") and "." in body["created_at"]
    assert body["settings"] == {
        "discoverable": "everyone",
        "last_seen": "contacts",
        "read_receipts": True,
        "message_preview_in_push": True,
        "moments_window": "all",
        "moments_notifications": True,
        "group_add": "contacts",
    }


@pytest.mark.django_db
def test_patch_me_changes_given_fields_and_keeps_the_others(alice):
    response = alice.client.patch(
        ME, {"display_name": "Alice L.", "settings": {"last_seen": "nobody"}}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["display_name"] == "Alice L."
    assert body["settings"] == {
        "discoverable": "everyone",
        "last_seen": "nobody",
        "read_receipts": True,
        "message_preview_in_push": True,
        "moments_window": "all",
        "moments_notifications": True,
        "group_add": "everyone",  # the test factory's (a real signup gets "contacts")
    }
    body = alice.client.patch(ME, {"about": "", "settings": {"read_receipts": False}}, format="json").json()
    assert body["display_name"] == "Alice L." and body["about"] == ""
    assert body["settings"]["last_seen"] == "nobody" and body["settings"]["read_receipts"] is False
    body = alice.client.patch(ME, {"settings": {"group_add": "nobody"}}, format="json").json()
    assert body["settings"]["group_add"] == "nobody" and body["settings"]["last_seen"] == "nobody"
    assert alice.client.get(ME).json()["settings"]["group_add"] == "nobody"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": ""}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": 42}, "display_name"),
        ({"about": "x" * 141}, "about"),
        ({"settings": {"discoverable": "friends"}}, "settings.discoverable"),
        ({"settings": {"last_seen": None}}, "settings.last_seen"),
        ({"settings": {"read_receipts": "yes"}}, "settings.read_receipts"),
        ({"settings": {"message_preview_in_push": 1}}, "settings.message_preview_in_push"),
        ({"settings": {"group_add": "friends"}}, "settings.group_add"),
        ({"settings": {"group_add": None}}, "settings.group_add"),
        ({"settings": {"group_add": ["everyone"]}}, "settings.group_add"),
        ({"settings": {"theme": "dark"}}, "settings.theme"),
        ({"settings": "everyone"}, "settings"),
        ({"phone": "+447700900999"}, "phone"),
        ({"id": "00000000-0000-0000-0000-000000000000"}, "id"),
    ],
)
def test_patch_me_bad_input_is_validation_error_and_changes_nothing(alice, body, field):
    response = alice.client.patch(ME, {"display_name": "Changed", **body} if "display_name" not in body else body,
                                  format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]
    alice.user.refresh_from_db()
    assert alice.user.display_name == "Alice" and alice.user.phone == "+447700900001"
    assert alice.user.group_add == "everyone"


@pytest.mark.django_db
def test_patch_me_accepts_unicode_names(alice):
    response = alice.client.patch(ME, {"display_name": "米聊 🙂", "about": "你好"}, format="json")
    assert response.status_code == 200
    assert response.json()["display_name"] == "米聊 🙂"


# --- Public profiles and last_seen privacy --------------------------------------------------


@pytest.mark.django_db
def test_public_profile_has_only_public_fields(alice, bob):
    body = alice.client.get(f"/api/v1/users/{bob.user.pk}").json()
    assert set(body) <= {"id", "display_name", "about", "avatar_url", "last_seen"}
    assert body["display_name"] == "Bob"
    assert "phone" not in body


@pytest.mark.django_db
def test_last_seen_follows_the_targets_setting(alice, bob):
    seen = timezone.now()
    User.objects.filter(pk=bob.user.pk).update(last_seen_at=seen, last_seen_visibility="everyone")
    body = alice.client.get(f"/api/v1/users/{bob.user.pk}").json()
    assert body["last_seen"].startswith(seen.strftime("%Y-%m-%dT%H:%M"))

    User.objects.filter(pk=bob.user.pk).update(last_seen_visibility="nobody")
    assert "last_seen" not in alice.client.get(f"/api/v1/users/{bob.user.pk}").json()

    # "contacts": Alice is not in Bob's address book.
    User.objects.filter(pk=bob.user.pk).update(last_seen_visibility="contacts")
    assert "last_seen" not in alice.client.get(f"/api/v1/users/{bob.user.pk}").json()


@pytest.mark.django_db
@pytest.mark.parametrize("user_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "1"])
def test_unknown_user_is_not_found(alice, user_id):
    response = alice.client.get(f"/api/v1/users/{user_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- Devices ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_device_list_marks_the_current_device(alice, bob):
    tablet = alice.another_device(name="iPad", platform="ios")
    body = tablet.client.get("/api/v1/devices").json()
    assert [(d["name"], d["current"]) for d in body] == [("Phone", False), ("iPad", True)]
    assert set(body[0]) == {"id", "name", "platform", "created_at", "last_active_at", "current"}


@pytest.mark.django_db
def test_revoking_a_device_kills_its_token(alice):
    tablet = alice.another_device()
    assert alice.client.delete(f"/api/v1/devices/{tablet.device.pk}").status_code == 204
    assert tablet.client.get(ME).status_code == 401
    assert [d["id"] for d in alice.client.get("/api/v1/devices").json()] == [str(alice.device.pk)]


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["foreign", "unknown", "garbage", "revoked"])
def test_revoking_someone_elses_or_unknown_device_is_not_found(alice, bob, which):
    revoked = alice.another_device()
    Device.objects.filter(pk=revoked.device.pk).update(revoked_at=timezone.now())
    device_id = {
        "foreign": bob.device.pk,
        "unknown": "00000000-0000-0000-0000-000000000000",
        "garbage": "xyz",
        "revoked": revoked.device.pk,
    }[which]
    response = alice.client.delete(f"/api/v1/devices/{device_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert bob.client.get(ME).status_code == 200


@pytest.mark.django_db
def test_push_token_register_move_and_unregister(alice):
    tablet = alice.another_device()
    assert alice.client.put("/api/v1/devices/current/push", {"provider": "fcm", "token": "tok-1"},
                            format="json").status_code == 204
    alice.device.refresh_from_db()
    assert (alice.device.push_provider, alice.device.push_token) == ("fcm", "tok-1")
    # The same install token registered by another device moves there.
    tablet.client.put("/api/v1/devices/current/push", {"provider": "fcm", "token": "tok-1"}, format="json")
    alice.device.refresh_from_db()
    assert alice.device.push_token == ""
    assert tablet.client.delete("/api/v1/devices/current/push").status_code == 204
    tablet.device.refresh_from_db()
    assert tablet.device.push_token == "" and tablet.device.push_provider == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [{"provider": "sms", "token": "x"}, {"provider": "fcm"}, {"provider": "fcm", "token": ""},
     {"provider": "apns", "token": 5}, {"provider": "fcm", "token": "x" * 5000}],
)
def test_push_token_bad_input(alice, body):
    response = alice.client.put("/api/v1/devices/current/push", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


# --- Account deletion -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_deleting_the_account_revokes_devices_and_erases_the_profile(alice, bob, settings):
    tablet = alice.another_device()
    alice.client.patch(ME, {"about": "secret"}, format="json")
    assert alice.client.delete(ME).status_code == 204
    assert alice.client.get(ME).status_code == 401
    assert tablet.client.get(ME).status_code == 401
    erased = User.objects.get(pk=alice.user.pk)
    assert erased.phone is None and erased.display_name == "" and erased.about == "" and not erased.is_active
    assert bob.client.get(f"/api/v1/users/{alice.user.pk}").status_code == 404

    # The number can sign up again, as a new user.
    settings.OTP_TEST_NUMBERS = ["+447700900001"]
    otp_request(phone="+447700900001", client_ip="10.0.0.1")
    again = otp_verify(phone="+447700900001", code=settings.OTP_TEST_CODE, device_name="P", platform="ios",
                       client_ip="10.0.0.1")
    assert again.is_new_user and again.user.pk != alice.user.pk


@pytest.mark.django_db
def test_deletion_steps_run_in_the_same_transaction(alice, settings):
    settings.ACCOUNT_DELETION_STEPS = ["tests.accounts.test_profile_and_devices.failing_step"]
    assert alice.client.delete(ME).status_code == 500
    alice.user.refresh_from_db()
    assert alice.user.is_active and alice.user.phone == "+447700900001"
    assert alice.client.get(ME).status_code == 200


def failing_step(*, user_id: object) -> None:
    raise RuntimeError("a later step failed")


@pytest.mark.django_db
def test_registration_hooks_run_once_with_the_new_user(settings, django_capture_on_commit_callbacks):
    seen.clear()
    settings.ACCOUNT_REGISTERED_HOOKS = ["tests.accounts.test_profile_and_devices.record_registration"]
    settings.OTP_TEST_NUMBERS = ["+1555"]
    otp_request(phone="+15550100444", client_ip="10.0.0.1")
    with django_capture_on_commit_callbacks(execute=True):
        result = otp_verify(phone="+15550100444", code=settings.OTP_TEST_CODE, device_name="P", platform="web",
                            client_ip="10.0.0.1")
    assert seen == [result.user.pk]
    otp_request(phone="+15550100444", client_ip="10.0.0.1")
    with django_capture_on_commit_callbacks(execute=True):
        otp_verify(phone="+15550100444", code=settings.OTP_TEST_CODE, device_name="Q", platform="web",
                   client_ip="10.0.0.1")
    assert seen == [result.user.pk]  # signing in again is not a registration


seen: list = []


def record_registration(*, user_id: object) -> None:
    seen.append(user_id)


@pytest.mark.django_db
def test_factories_sign_in_helper_makes_working_tokens():
    person = sign_in(display_name="Dana")
    assert person.client.get(ME).json()["display_name"] == "Dana"


@pytest.mark.django_db
def test_a_failing_registration_hook_leaves_no_half_made_account(settings):
    settings.ACCOUNT_REGISTERED_HOOKS = ["tests.accounts.test_profile_and_devices.failing_step"]
    settings.OTP_TEST_NUMBERS = ["+1555"]
    otp_request(phone="+15550100445", client_ip="10.0.0.1")
    with pytest.raises(RuntimeError):
        otp_verify(phone="+15550100445", code=settings.OTP_TEST_CODE, device_name="P", platform="web",
                   client_ip="10.0.0.1")
    assert not User.objects.filter(phone="+15550100445").exists()
