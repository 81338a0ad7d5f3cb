"""The one error shape on every path: unknown URLs, wrong methods, malformed and oversized bodies."""

import json

import pytest
from django.test import RequestFactory

from core.errors import handler500


def assert_error_shape(response, status, code):
    assert response.status_code == status
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.django_db
def test_unknown_url_is_not_found_in_the_error_shape(api):
    assert_error_shape(api.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_error_shape(api.get("/nowhere"), 404, "not_found")


@pytest.mark.django_db
def test_wrong_method_is_405_in_the_error_shape(alice):
    assert_error_shape(alice.client.put("/api/v1/devices"), 405, "method_not_allowed")


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [b"{bad json", b"", b"[1, 2]", b'"just a string"', b"\xff\xfe", b"null", b"NaN"])
def test_malformed_or_non_object_json_is_validation_error(api, raw):
    response = api.generic("POST", "/api/v1/auth/otp/request", raw, content_type="application/json")
    assert_error_shape(response, 400, "validation_error")


@pytest.mark.django_db
def test_oversized_json_body_is_payload_too_large(api, settings):
    body = json.dumps({"phone": "+447700900123", "pad": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
    response = api.generic("POST", "/api/v1/auth/otp/request", body, content_type="application/json")
    assert_error_shape(response, 413, "payload_too_large")


@pytest.mark.django_db
def test_unsupported_content_type_is_415(api):
    response = api.generic("POST", "/api/v1/auth/otp/request", "phone=1", content_type="text/plain")
    assert_error_shape(response, 415, "unsupported_media_type")


def test_server_errors_render_in_the_error_shape():
    assert_error_shape(handler500(RequestFactory().get("/")), 500, "internal_error")


@pytest.mark.django_db
def test_unhandled_exception_in_a_view_is_500_in_the_error_shape(alice, monkeypatch):
    def explode(**kwargs):
        raise KeyError("bug")

    monkeypatch.setattr("accounts.selectors.device_list", explode)
    error = assert_error_shape(alice.client.get("/api/v1/devices"), 500, "internal_error")
    assert "bug" not in error["message"]
