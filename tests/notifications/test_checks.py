"""PUSH_BACKEND=real with missing credentials fails when a process starts, not at the first push."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from notifications.checks import ensure_push_configured
from tests.processes import ROOT, Worker, wait_for


def no_credentials(settings) -> None:
    for name in ("PUSH_FCM_CREDENTIALS_FILE", "PUSH_FCM_CREDENTIALS_JSON", "PUSH_APNS_KEY", "PUSH_APNS_KEY_FILE",
                 "PUSH_APNS_KEY_ID", "PUSH_APNS_TEAM_ID", "PUSH_APNS_TOPIC", "PUSH_WEBPUSH_VAPID_PRIVATE_KEY",
                 "PUSH_WEBPUSH_VAPID_SUBJECT"):
        setattr(settings, name, "")


@pytest.mark.parametrize("backend", ["log", "file"])
def test_development_backends_need_no_credentials(settings, backend):
    no_credentials(settings)
    settings.PUSH_BACKEND = backend
    ensure_push_configured()


def test_unknown_backend_is_refused(settings):
    settings.PUSH_BACKEND = "carrier-pigeon"
    with pytest.raises(ImproperlyConfigured, match="Unknown PUSH_BACKEND"):
        ensure_push_configured()


@pytest.mark.parametrize(("provider", "message"), [
    ("fcm", "PUSH_FCM_CREDENTIALS_FILE or PUSH_FCM_CREDENTIALS_JSON"),
    ("apns", "PUSH_APNS_KEY or PUSH_APNS_KEY_FILE, PUSH_APNS_KEY_ID, PUSH_APNS_TEAM_ID, PUSH_APNS_TOPIC"),
    ("webpush", "PUSH_WEBPUSH_VAPID_PRIVATE_KEY and PUSH_WEBPUSH_VAPID_SUBJECT"),
])
def test_real_backend_without_a_providers_credentials_is_refused(settings, provider, message):
    no_credentials(settings)
    settings.PUSH_BACKEND = "real"
    settings.PUSH_PROVIDERS = [provider]
    with pytest.raises(ImproperlyConfigured) as error:
        ensure_push_configured()
    assert message in str(error.value)


def test_real_backend_with_broken_credentials_is_refused(settings, tmp_path):
    no_credentials(settings)
    settings.PUSH_BACKEND = "real"
    settings.PUSH_PROVIDERS = ["fcm"]
    settings.PUSH_FCM_CREDENTIALS_JSON = ('{"project_id": "p", "client_email": "e", "private_key": "nope", '
                                          '"token_uri": "https://oauth2.example/token"}')
    with pytest.raises(ImproperlyConfigured, match="not an RSA PEM key"):
        ensure_push_configured()
    settings.PUSH_PROVIDERS = ["apns"]
    settings.PUSH_APNS_KEY_FILE = str(tmp_path / "missing.p8")
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        ensure_push_configured()
    settings.PUSH_PROVIDERS = ["webpush"]
    settings.PUSH_WEBPUSH_VAPID_PRIVATE_KEY = "bm90IGEga2V5"
    settings.PUSH_WEBPUSH_VAPID_SUBJECT = "mailto:ops@example.org"
    with pytest.raises(ImproperlyConfigured, match="not a P-256 private key"):
        ensure_push_configured()


def test_unknown_provider_name_is_refused(settings):
    settings.PUSH_BACKEND = "real"
    settings.PUSH_PROVIDERS = ["fcm", "pager"]
    with pytest.raises(ImproperlyConfigured, match="pager"):
        ensure_push_configured()


def test_real_backend_with_every_provider_configured_starts(settings, fcm_settings, apns_settings, webpush_settings):
    settings.PUSH_BACKEND = "real"
    settings.PUSH_PROVIDERS = ["fcm", "apns", "webpush"]
    ensure_push_configured()


REAL_WITHOUT_CREDENTIALS = {"PUSH_BACKEND": "real", "PUSH_PROVIDERS": "fcm", "PUSH_FCM_CREDENTIALS_FILE": "",
                            "PUSH_FCM_CREDENTIALS_JSON": ""}


def test_manage_py_refuses_to_start_without_credentials():
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **REAL_WITHOUT_CREDENTIALS}, timeout=60)
    assert result.returncode != 0
    assert "ImproperlyConfigured: FCM needs PUSH_FCM_CREDENTIALS_FILE" in result.stderr


@pytest.mark.slow
def test_celery_worker_refuses_to_start_without_credentials(tmp_path):
    worker = Worker(REAL_WITHOUT_CREDENTIALS, log_path=tmp_path / "worker.log")
    try:
        wait_for(lambda: worker.process.poll() is not None, timeout=30, message="the worker to exit")
    finally:
        worker.stop()
    assert worker.process.returncode != 0
    assert "FCM needs PUSH_FCM_CREDENTIALS_FILE" in worker.output()
