"""Fixtures for push tests: provider credentials made on the spot and local provider servers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.notifications.servers import ScriptedH2Server, ScriptedHttpServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def apns_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def http_server() -> Iterator[ScriptedHttpServer]:
    with ScriptedHttpServer() as server:
        yield server


@pytest.fixture
def h2_server() -> Iterator[ScriptedH2Server]:
    with ScriptedH2Server() as server:
        yield server


@pytest.fixture
def fcm_settings(settings: Any, rsa_key: rsa.RSAPrivateKey, http_server: ScriptedHttpServer) -> ScriptedHttpServer:
    """FCM configured against the local server: token URI and send endpoint both point at it."""
    settings.PUSH_FCM_CREDENTIALS_JSON = json.dumps({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "key-1",
        "private_key": _pem(rsa_key),
        "client_email": "push@demo-project.iam.gserviceaccount.com",
        "token_uri": f"{http_server.url}/token",
    })
    settings.PUSH_FCM_ENDPOINT = http_server.url
    http_server.script("/token", _token_reply())
    return http_server


def _token_reply() -> Any:
    from tests.notifications.servers import Reply

    return Reply(200, {"access_token": "ya29.local-access-token", "expires_in": 3599, "token_type": "Bearer"})


@pytest.fixture
def apns_settings(settings: Any, apns_key: ec.EllipticCurvePrivateKey, h2_server: ScriptedH2Server,
                  tmp_path: Path) -> ScriptedH2Server:
    key_file = tmp_path / "AuthKey_ABC123DEFG.p8"
    key_file.write_text(_pem(apns_key))
    settings.PUSH_APNS_KEY_FILE = str(key_file)
    settings.PUSH_APNS_KEY_ID = "ABC123DEFG"
    settings.PUSH_APNS_TEAM_ID = "DEF123GHIJ"
    settings.PUSH_APNS_TOPIC = "org.example.messenger"
    settings.PUSH_APNS_ENDPOINT = h2_server.url
    return h2_server


@pytest.fixture
def webpush_settings(settings: Any, vapid_key: ec.EllipticCurvePrivateKey,
                     http_server: ScriptedHttpServer) -> ScriptedHttpServer:
    raw = vapid_key.private_numbers().private_value.to_bytes(32, "big")
    settings.PUSH_WEBPUSH_VAPID_PRIVATE_KEY = b64url(raw)
    settings.PUSH_WEBPUSH_VAPID_SUBJECT = "mailto:ops@example.org"
    # The local push service is plain HTTP on 127.0.0.1; production requires https.
    settings.PUSH_WEBPUSH_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.PUSH_WEBPUSH_REQUIRE_HTTPS = False
    return http_server


class BrowserSubscription:
    """What a browser's PushManager.subscribe() returns: endpoint plus the keys to encrypt to it."""

    def __init__(self, endpoint: str) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = b"0123456789abcdef"
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.endpoint = endpoint
        self.token = json.dumps({"endpoint": endpoint, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}})

    def decrypt(self, body: bytes) -> Any:
        import http_ece

        return json.loads(http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth,
                                           version="aes128gcm"))


@pytest.fixture
def push_file(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "push.jsonl"
    settings.PUSH_BACKEND = "file"
    settings.PUSH_FILE_PATH = str(path)
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
