"""Phone verification: normalisation, hashed codes, expiry, tries, cooldown and SMS limits."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Device, PhoneVerification, User

REQUEST = "/api/v1/auth/otp/request"
VERIFY = "/api/v1/auth/otp/verify"
DEVICE = {"name": "Pixel 9", "platform": "android"}


@pytest.fixture
def sms_file(settings, tmp_path):
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(tmp_path / "sms.jsonl")
    return tmp_path / "sms.jsonl"


def sent_codes(sms_file) -> list[tuple[str, str]]:
    if not sms_file.exists():
        return []
    lines = [json.loads(line) for line in sms_file.read_text().splitlines()]
    return [(line["to"], line["body"].rsplit(" ", 1)[-1]) for line in lines]


@pytest.fixture
def post(api, django_capture_on_commit_callbacks):
    """POST JSON and run what the request deferred to commit (the SMS task), as production would."""

    def send(path, body, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return api.post(path, body, format="json", **extra)

    return send


def request_code(post, phone, region=None, ip="10.0.0.1"):
    body = {"phone": phone} if region is None else {"phone": phone, "region": region}
    return post(REQUEST, body, REMOTE_ADDR=ip)


def verify(post, phone, code, device=DEVICE, ip="10.0.0.1"):
    return post(VERIFY, {"phone": phone, "code": code, "device": device}, REMOTE_ADDR=ip)


# --- Normalisation -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+44 7911 123123", None, "+447911123123"),
        ("+44-7911-123123", None, "+447911123123"),
        ("+44 (0)7911 123123", None, "+447911123123"),
        ("07911 123123", "GB", "+447911123123"),
        ("07911123123", "gb", "+447911123123"),
        ("+1 (650) 253-0000", None, "+16502530000"),
        ("650.253.0000", "US", "+16502530000"),
        ("+86 138 0013 8000", None, "+8613800138000"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("+91 98765 43210", None, "+919876543210"),
    ],
)
def test_request_normalises_numbers_to_e164(api, post, sms_file, raw, region, e164):
    response = request_code(post, raw, region)
    assert response.status_code == 202, response.json()
    assert response.json() == {"phone": e164, "expires_in": 300, "resend_after": 60}
    assert sent_codes(sms_file)[0][0] == e164


@pytest.mark.django_db
def test_request_accepts_the_contracts_own_example_number(api, post, sms_file):
    # API.md, "Accounts and devices": exactly as written there.
    response = post("/api/v1/auth/otp/request", {"phone": "+44 7700 900123", "region": "GB"})
    assert response.status_code == 202, response.json()
    assert response.json() == {"phone": "+447700900123", "expires_in": 300, "resend_after": 60}
    national = post("/api/v1/auth/otp/request", {"phone": "07700 900124", "region": "GB"})
    assert national.status_code == 202, national.json()
    assert national.json()["phone"] == "+447700900124"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("07911 123123", None),  # national number without a region
        ("+44 7700 CALLME", None),  # letters
        ("1-800-FLOWERS", "US"),
        ("+44 77", None),  # too short
        ("+44 7911 123123 4567 8901", None),  # too long
        ("+44 909 879 0000", None),  # UK premium rate
        ("+1 900 555 0100", None),  # US premium rate
        ("", None),
        ("   ", None),
        (12345678, None),
        (None, None),
        (["+447911123123"], None),
        ({"number": "+447911123123"}, None),
        ("+44 7911 123123; DROP TABLE", None),
        ("+" + "1" * 200, None),
        ("+44 7700 901123", None),  # next to the documentation range the contract's example uses
        ("+44 7700 900123 99", None),  # in that range but too long
    ],
)
def test_request_refuses_invalid_numbers_with_invalid_phone(api, post, sms_file, raw, region):
    response = request_code(post, raw, region)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_phone"
    assert PhoneVerification.objects.count() == 0
    assert sent_codes(sms_file) == []


@pytest.mark.django_db
@pytest.mark.parametrize("region", ["ZZ", "GBR", 44, True])
def test_request_refuses_unknown_region(api, post, region):
    response = request_code(post, "07911 123123", region)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "region" in response.json()["error"]["details"]


@pytest.mark.django_db
def test_request_refuses_unknown_fields_and_missing_phone(api):
    response = api.post(REQUEST, {"phone": "+447911123123", "admin": True}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"admin": ["Unknown field."]}
    response = api.post(REQUEST, {}, format="json")
    assert response.status_code == 400
    assert "phone" in response.json()["error"]["details"]


# --- Codes are hashed, the number is keyed ---------------------------------------------


@pytest.mark.django_db
def test_neither_code_nor_number_is_stored_in_clear(api, post, sms_file):
    request_code(post, "+447911123123")
    (_, code), = sent_codes(sms_file)
    row = PhoneVerification.objects.get()
    stored = " ".join(str(value) for value in PhoneVerification.objects.values_list().get())
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert "7911123123" not in stored
    assert len(code) == 6 and code.isdigit()


# --- Verify ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_signs_up_then_signs_in_with_a_new_device_each_time(api, post, sms_file):
    request_code(post, "+447911123123")
    (_, code), = sent_codes(sms_file)
    response = verify(post, "+447911123123", code)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["is_new_user"] is True
    assert body["user"]["phone"] == "+447911123123"
    assert body["device"]["name"] == "Pixel 9" and body["device"]["current"] is True
    first_token = body["token"]

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {first_token}")
    assert api.get("/api/v1/me").json()["id"] == body["user"]["id"]
    api.credentials()

    PhoneVerification.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    request_code(post, "07911 123123", "GB")
    code = sent_codes(sms_file)[-1][1]
    again = verify(post, "+447911123123", code, device={"name": "iPad", "platform": "ios"}).json()
    assert again["is_new_user"] is False
    assert again["user"]["id"] == body["user"]["id"]
    assert again["token"] != first_token
    assert Device.objects.filter(user_id=body["user"]["id"], revoked_at__isnull=True).count() == 2
    # Tokens are stored only as digests.
    assert not Device.objects.filter(token_hash__in=[first_token, again["token"]]).exists()


@pytest.mark.django_db
def test_wrong_code_is_invalid_code_and_nothing_is_created(api, post, sms_file):
    request_code(post, "+447911123123")
    (_, code), = sent_codes(sms_file)
    wrong = "000000" if code != "000000" else "111111"
    response = verify(post, "+447911123123", wrong)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_code"
    assert User.objects.count() == 0 and Device.objects.count() == 0


@pytest.mark.django_db
def test_verify_without_a_pending_code_is_invalid_code(api, post):
    response = verify(post, "+447911123123", "123456")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_code"


@pytest.mark.django_db
def test_a_code_works_only_once(api, post, sms_file):
    request_code(post, "+447911123123")
    (_, code), = sent_codes(sms_file)
    assert verify(post, "+447911123123", code).status_code == 200
    again = verify(post, "+447911123123", code)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_code"


@pytest.mark.django_db
def test_expired_code_is_code_expired(api, post, sms_file):
    request_code(post, "+447911123123")
    (_, code), = sent_codes(sms_file)
    PhoneVerification.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = verify(post, "+447911123123", code)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "code_expired"
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_too_many_wrong_codes_lock_the_code_even_for_the_right_one(api, post, sms_file, settings):
    settings.OTP_MAX_ATTEMPTS = 3
    request_code(post, "+447911123123")
    (_, code), = sent_codes(sms_file)
    wrong = "999999" if code != "999999" else "888888"
    for _ in range(3):
        assert verify(post, "+447911123123", wrong).json()["error"]["code"] == "invalid_code"
    response = verify(post, "+447911123123", code)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_attempts"
    assert int(response["Retry-After"]) >= 1
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_brute_force_across_resends_is_stopped_per_number(api, post, sms_file, settings):
    settings.OTP_VERIFY_LIMIT_PER_NUMBER = (4, 3600)
    settings.OTP_RESEND_AFTER_SECONDS = 0
    for _ in range(2):
        request_code(post, "+447911123123")
        for guess in ("000001", "000002"):
            verify(post, "+447911123123", guess)
    request_code(post, "+447911123123")
    code = sent_codes(sms_file)[-1][1]
    response = verify(post, "+447911123123", code)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_attempts"
    # Another number is not affected.
    request_code(post, "+447911123124")
    assert verify(post, "+447911123124", sent_codes(sms_file)[-1][1]).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"phone": "+447911123123", "code": "123456", "device": {"name": "X", "platform": "symbian"}},
            "device.platform",
        ),
        ({"phone": "+447911123123", "code": "123456", "device": {"name": "", "platform": "ios"}}, "device.name"),
        ({"phone": "+447911123123", "code": "123456", "device": {"name": "x" * 65, "platform": "ios"}}, "device.name"),
        ({"phone": "+447911123123", "code": 123456, "device": DEVICE}, "code"),
        ({"phone": "+447911123123", "code": "123456"}, "device"),
        ({"phone": "+447911123123", "code": "123456", "device": DEVICE, "extra": 1}, "extra"),
        ({"phone": "+447911123123", "code": "123456", "device": {**DEVICE, "os": "x"}}, "device.os"),
    ],
)
def test_verify_bad_input_is_validation_error_and_burns_no_code(api, post, sms_file, body, field):
    request_code(post, "+447911123123")
    response = api.post(VERIFY, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["details"]
    assert PhoneVerification.objects.get().attempts == 0
    assert User.objects.count() == 0 and Device.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_verifies_of_one_number_make_one_user(settings):
    settings.OTP_TEST_NUMBERS = ["+1555"]
    from accounts.services import otp_request, otp_verify

    results, errors = [], []

    def sign_in() -> None:
        try:
            otp_request(phone="+15550100777", client_ip="10.0.0.1")
            results.append(otp_verify(phone="+15550100777", code=settings.OTP_TEST_CODE, device_name="P",
                                      platform="android", client_ip="10.0.0.1"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_in) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert User.objects.filter(phone="+15550100777").count() == 1
    # Each racer either signed in or lost its code to a newer request; never a second user.
    assert len(results) >= 1
    assert all(result.user.phone == "+15550100777" for result in results)
    assert sum(result.is_new_user for result in results) == 1
    assert all(getattr(error, "code", "") in {"invalid_code"} for error in errors)


# --- Cooldown and SMS limits -------------------------------------------------------------


@pytest.mark.django_db
def test_resend_within_cooldown_is_rate_limited_with_retry_after(api, post, sms_file):
    assert request_code(post, "+447911123123").status_code == 202
    response = request_code(post, "+447911123123")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 61
    assert len(sent_codes(sms_file)) == 1


@pytest.mark.django_db
def test_a_resend_supersedes_the_previous_code(api, post, sms_file, settings):
    settings.OTP_RESEND_AFTER_SECONDS = 0
    request_code(post, "+447911123123")
    request_code(post, "+447911123123")
    (_, first), (_, second) = sent_codes(sms_file)
    if first != second:
        assert verify(post, "+447911123123", first).json()["error"]["code"] == "invalid_code"
    assert verify(post, "+447911123123", second).status_code == 200


@pytest.mark.django_db
def test_sms_limit_per_number(api, post, sms_file, settings):
    settings.OTP_RESEND_AFTER_SECONDS = 0
    settings.OTP_LIMIT_PER_NUMBER = (2, 3600)
    assert [request_code(post, "+447911123123", ip=f"10.0.0.{i}").status_code for i in range(3)] == [202, 202, 429]
    assert len(sent_codes(sms_file)) == 2


@pytest.mark.django_db
def test_sms_limit_per_ip_leaves_other_ips_alone(api, post, sms_file, settings):
    settings.OTP_LIMIT_PER_IP = (3, 3600)
    statuses = [request_code(post, f"+4479111231{i:02d}", ip="192.0.2.7").status_code for i in range(4)]
    assert statuses == [202, 202, 202, 429]
    assert request_code(post, "+447911123199", ip="192.0.2.8").status_code == 202


@pytest.mark.django_db
def test_sms_limit_per_country_prefix_stops_sms_pumping(api, post, sms_file, settings):
    settings.OTP_LIMIT_PER_PREFIX = (2, 3600)
    statuses = [request_code(post, f"+4479111232{i:02d}", ip=f"10.1.0.{i}").status_code for i in range(3)]
    assert statuses == [202, 202, 429]
    # Another country still gets its codes.
    assert request_code(post, "+16502530000", ip="10.1.1.1").status_code == 202


@pytest.mark.django_db
def test_a_refused_request_spends_no_other_budget(api, post, sms_file, settings):
    """An IP past its limit must not eat the number's own budget."""
    settings.OTP_LIMIT_PER_IP = (1, 3600)
    settings.OTP_LIMIT_PER_NUMBER = (1, 3600)
    assert request_code(post, "+447911123150", ip="10.9.9.9").status_code == 202
    assert request_code(post, "+447911123151", ip="10.9.9.9").status_code == 429
    assert request_code(post, "+447911123151", ip="10.9.9.10").status_code == 202


# --- Test numbers ------------------------------------------------------------------------


@pytest.mark.django_db
def test_test_numbers_get_no_sms_no_send_limits_and_the_fixed_code(api, post, sms_file, settings):
    settings.OTP_TEST_NUMBERS = ["+1555"]
    settings.OTP_TEST_CODE = "424242"
    settings.OTP_LIMIT_PER_IP = (1, 3600)
    for _ in range(5):
        assert request_code(post, "+1 555 010 0999").status_code == 202
    assert sent_codes(sms_file) == []
    response = verify(post, "+15550100999", "424242")
    assert response.status_code == 200
    assert response.json()["is_new_user"] is True


@pytest.mark.django_db
def test_test_numbers_still_count_wrong_codes(api, post, settings):
    settings.OTP_TEST_NUMBERS = ["+1555"]
    settings.OTP_MAX_ATTEMPTS = 2
    request_code(post, "+15550100998")
    for _ in range(2):
        assert verify(post, "+15550100998", "111111").status_code == 400
    assert verify(post, "+15550100998", settings.OTP_TEST_CODE).status_code == 429


@pytest.mark.django_db
def test_test_numbers_are_off_unless_configured(api, post, sms_file, settings):
    settings.OTP_TEST_NUMBERS = []
    settings.OTP_TEST_CODE = "424242"
    request_code(post, "+447911123123")
    (_, code), = sent_codes(sms_file)  # a real SMS went out
    if code != "424242":  # one chance in a million that the random code is the test code
        response = verify(post, "+447911123123", "424242")
        assert response.json()["error"]["code"] == "invalid_code"
