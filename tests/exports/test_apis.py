from datetime import timedelta

import pytest
from django.utils import timezone

from exports.models import Export
from tests.exports.conftest import finished_export, open_archive


def _content(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def ready_export(alice, django_capture_on_commit_callbacks) -> Export:
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.client.post("/api/v1/me/exports")
    assert response.status_code == 202
    return Export.objects.get(pk=response.json()["id"])


@pytest.mark.django_db
def test_request_export_answers_202_pending(alice):
    response = alice.client.post("/api/v1/me/exports")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["download_url"] is None and body["size"] is None
    assert body["created_at"].endswith("Z")
    assert Export.objects.get(pk=body["id"]).user_id == alice.user.pk


@pytest.mark.django_db
def test_second_request_while_running_is_409_naming_the_running_export(alice):
    first = alice.client.post("/api/v1/me/exports").json()
    response = alice.client.post("/api/v1/me/exports")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert response.json()["error"]["details"]["export_id"] == first["id"]


@pytest.mark.django_db
def test_request_within_24h_of_last_finished_is_429_with_retry_after(alice):
    finished_export(alice.user, finished_ago=timedelta(hours=1))
    response = alice.client.post("/api/v1/me/exports")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 22 * 3600 < int(response["Retry-After"]) <= 23 * 3600 + 1


@pytest.mark.django_db
def test_status_list_and_detail_show_ready_export_with_download_url(alice, ready_export):
    detail = alice.client.get(f"/api/v1/me/exports/{ready_export.pk}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["status"] == "ready" and body["size"] == ready_export.size and body["progress"] == 100
    assert body["download_url"] == f"http://testserver/api/v1/me/exports/{ready_export.pk}/download"
    assert body["expires_at"].endswith("Z")
    listing = alice.client.get("/api/v1/me/exports").json()
    assert [item["id"] for item in listing] == [str(ready_export.pk)]
    assert alice.client.get("/api/v1/me/exports/latest").json()["id"] == str(ready_export.pk)


@pytest.mark.django_db
def test_latest_is_404_when_nothing_is_ready(alice):
    response = alice.client.get("/api/v1/me/exports/latest")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_another_users_export_is_404_for_status_and_download(bob, ready_export):
    for path in (f"/api/v1/me/exports/{ready_export.pk}", f"/api/v1/me/exports/{ready_export.pk}/download"):
        response = bob.client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert bob.client.get("/api/v1/me/exports").json() == []


@pytest.mark.django_db
def test_malformed_export_id_is_404(alice):
    for export_id in ("not-a-uuid", "1", "%00"):
        assert alice.client.get(f"/api/v1/me/exports/{export_id}").status_code == 404


@pytest.mark.django_db
def test_exports_need_authentication(api, ready_export):
    assert api.get("/api/v1/me/exports").status_code == 401
    assert api.get(f"/api/v1/me/exports/{ready_export.pk}/download").status_code == 401


@pytest.mark.django_db
def test_download_serves_the_whole_zip_as_an_attachment(alice, ready_export):
    response = alice.client.get(f"/api/v1/me/exports/{ready_export.pk}/download", HTTP_ACCEPT="application/zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["Accept-Ranges"] == "bytes"
    content = _content(response)
    assert len(content) == ready_export.size == int(response["Content-Length"])
    assert "profile.json" in open_archive(content).namelist()


@pytest.mark.django_db
def test_download_honours_ranges(alice, ready_export):
    url = f"/api/v1/me/exports/{ready_export.pk}/download"
    whole = _content(alice.client.get(url))
    size = len(whole)

    first = alice.client.get(url, HTTP_RANGE="bytes=0-99")
    assert first.status_code == 206
    assert first["Content-Range"] == f"bytes 0-99/{size}"
    assert _content(first) == whole[:100]

    rest = alice.client.get(url, HTTP_RANGE="bytes=100-")
    assert rest.status_code == 206 and _content(rest) == whole[100:]

    tail = alice.client.get(url, HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and _content(tail) == whole[-10:]

    beyond = alice.client.get(url, HTTP_RANGE=f"bytes={size}-")
    assert beyond.status_code == 416
    assert beyond["Content-Range"] == f"bytes */{size}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.django_db
def test_download_of_an_expired_export_is_410(alice, ready_export):
    from exports.services import export_expire_due

    Export.objects.filter(pk=ready_export.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    export_expire_due()
    response = alice.client.get(f"/api/v1/me/exports/{ready_export.pk}/download")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "export_expired"
    assert alice.client.get(f"/api/v1/me/exports/{ready_export.pk}").json()["status"] == "expired"


@pytest.mark.django_db
def test_download_before_the_archive_is_ready_is_409(alice):
    pending = alice.client.post("/api/v1/me/exports").json()
    response = alice.client.get(f"/api/v1/me/exports/{pending['id']}/download")
    assert response.status_code == 409
    assert response.json()["error"]["details"]["status"] == "pending"


@pytest.mark.django_db
def test_failed_export_shows_its_reason_and_serves_nothing(alice):
    failed = Export.objects.create(user=alice.user, status="failed", error="Not enough storage space.")
    body = alice.client.get(f"/api/v1/me/exports/{failed.pk}").json()
    assert body["status"] == "failed" and body["error"] == "Not enough storage space."
    assert body["download_url"] is None
    assert alice.client.get(f"/api/v1/me/exports/{failed.pk}/download").status_code == 409


@pytest.mark.django_db
def test_export_list_costs_the_same_queries_for_one_or_many(alice, django_assert_num_queries):
    finished_export(alice.user, finished_ago=timedelta(days=3))
    alice.client.get("/api/v1/me/exports")  # warm the device's activity stamp
    with django_assert_num_queries(2):  # the device token, the exports
        assert len(alice.client.get("/api/v1/me/exports").json()) == 1
    for days in range(4, 14):
        finished_export(alice.user, finished_ago=timedelta(days=days))
    with django_assert_num_queries(2):
        assert len(alice.client.get("/api/v1/me/exports").json()) == 11
