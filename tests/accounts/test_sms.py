"""SMS backends: the file backend's lines and the HTTP provider adapter against a local server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.sms import FileSmsBackend, HttpSmsBackend, get_sms_backend


class ProviderHandler(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ProviderHandler.received.append((self.headers["Authorization"], json.loads(body)))
        self.send_response(ProviderHandler.status)
        self.end_headers()
        self.wfile.write(b'{"id": "msg-1"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def provider():
    ProviderHandler.received = []
    ProviderHandler.status = 200
    server = HTTPServer(("127.0.0.1", 0), ProviderHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/messages"
    server.shutdown()


def test_http_adapter_posts_to_the_provider_with_its_token(settings, provider):
    settings.SMS_BACKEND = "http"
    settings.SMS_HTTP_URL = provider
    settings.SMS_HTTP_TOKEN = "secret-token"
    settings.SMS_HTTP_SENDER = "Messenger"
    get_sms_backend().send(to="+447911123456", body="Your verification code is 123456")
    assert ProviderHandler.received == [
        (
            "Bearer secret-token",
            {"to": "+447911123456", "from": "Messenger", "text": "Your verification code is 123456"},
        )
    ]


def test_http_adapter_raises_on_provider_errors_so_the_task_retries(settings, provider):
    settings.SMS_HTTP_URL = provider
    settings.SMS_HTTP_TOKEN = "t"
    ProviderHandler.status = 503
    with pytest.raises(httpx.HTTPError):
        HttpSmsBackend().send(to="+447911123456", body="x")


def test_otp_sms_task_retries_on_provider_errors():
    from accounts.tasks import send_otp_sms

    assert httpx.HTTPError in send_otp_sms.autoretry_for and OSError in send_otp_sms.autoretry_for


def test_http_adapter_without_credentials_fails_loudly(settings):
    settings.SMS_BACKEND = "http"
    settings.SMS_HTTP_URL = ""
    with pytest.raises(ImproperlyConfigured):
        get_sms_backend()


def test_unknown_backend_fails_loudly(settings):
    settings.SMS_BACKEND = "pigeon"
    with pytest.raises(ImproperlyConfigured):
        get_sms_backend()


def test_file_backend_appends_json_lines(tmp_path):
    path = tmp_path / "out" / "sms.jsonl"
    backend = FileSmsBackend(str(path))
    backend.send(to="+447911123456", body="a")
    backend.send(to="+447911123457", body="b")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["to"], line["body"]) for line in lines] == [("+447911123456", "a"), ("+447911123457", "b")]


def test_console_backend_never_prints_the_number(settings, capsys):
    settings.SMS_BACKEND = "console"
    get_sms_backend().send(to="+447911123456", body="Your verification code is 123456")
    out = capsys.readouterr().out
    assert "123456" in out and "7911123456" not in out
