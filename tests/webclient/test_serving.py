"""The web client as the server serves it: /app/ and its routes, the page's CSP, the built
assets, CORS for browser clients on other origins, and the socket's Origin check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.realtime.conftest import WebsocketCommunicator
from webclient.security import websocket_origin_allowed

DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


@pytest.fixture
def browser_client() -> Client:
    return Client()


@pytest.mark.parametrize("path", ["/app/", "/app/chat/8d0d1f9e-3a4e-4f55-9c56-0a1b2c3d4e5f", "/app/settings"])
def test_app_and_its_client_side_routes_serve_the_page(browser_client, path):
    response = browser_client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b'<div id="root"></div>' in response.content
    assert response["Cache-Control"] == "no-cache"


def test_app_without_slash_redirects(browser_client):
    response = browser_client.get("/app")
    assert response.status_code == 301 and response["Location"] == "/app/"


def test_the_page_has_a_csp_without_inline_script_and_no_inline_script(browser_client, settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    response = browser_client.get("/app/", HTTP_HOST="chat.example.com")
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "wss://chat.example.com" in policy["connect-src"]
    # Every script of the page is a file of this server.
    scripts = re.findall(rb"<script([^>]*)>(.*?)</script>", response.content, re.S)
    assert scripts and all(b"src=" in attrs and not body.strip() for attrs, body in scripts)
    # Calls need the camera and microphone, for this page only; location is never asked for.
    features = dict(part.strip().split("=", 1) for part in response["Permissions-Policy"].split(","))
    assert features["camera"] == features["microphone"] == "(self)" and features["geolocation"] == "()"


def test_built_assets_are_served_immutable(browser_client):
    asset = next((DIST / "assets").glob("index-*.js"))
    response = browser_client.get(f"/app/assets/{asset.name}")
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert b"".join(response.streaming_content) == asset.read_bytes()


def test_a_missing_asset_is_404_not_the_page(browser_client):
    response = browser_client.get("/app/assets/index-missing.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_app_refuses_writes(browser_client):
    assert browser_client.post("/app/").status_code == 405


@pytest.mark.django_db
def test_cors_preflight_from_an_allowed_origin(browser_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://web.example.com"]
    response = browser_client.options(
        "/api/v1/me", HTTP_ORIGIN="https://web.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://web.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert "PATCH" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.django_db
def test_cors_answers_expose_retry_after_even_on_errors(browser_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://web.example.com"]
    response = browser_client.get("/api/v1/me", HTTP_ORIGIN="https://web.example.com")
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == "https://web.example.com"
    assert "Retry-After" in response["Access-Control-Expose-Headers"]


@pytest.mark.django_db
def test_cors_gives_nothing_to_other_origins(browser_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://web.example.com"]
    response = browser_client.get("/api/v1/me", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response
    preflight = browser_client.options("/api/v1/me", HTTP_ORIGIN="https://evil.example",
                                       HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in preflight


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "chat.example.com", True),
        ("https://chat.example.com", "chat.example.com", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://web.example.com", "chat.example.com", True),
        ("https://evil.example", "chat.example.com", False),
        ("https://chat.example.com.evil.example", "chat.example.com", False),
        ("http://127.0.0.1:9000", "127.0.0.1:8000", False),
        ("null", "chat.example.com", False),
        ("file://", "chat.example.com", False),
    ],
)
def test_websocket_origin_rule(settings, origin, host, allowed):
    settings.CORS_ALLOWED_ORIGINS = ["https://web.example.com"]
    assert websocket_origin_allowed(origin=origin, host=host) is allowed


async def _handshake(headers: list[tuple[bytes, bytes]], token: str | None = None) -> dict:
    path = "/ws/v1" + (f"?token={token}" if token else "")
    communicator = WebsocketCommunicator(path, headers)
    await communicator.send_input({"type": "websocket.connect"})
    output = await communicator.receive_output(5)
    if output["type"] == "websocket.accept":
        await communicator.disconnect()
    return output


@pytest.mark.django_db(transaction=True)
async def test_socket_from_a_foreign_origin_is_refused_before_the_token_is_read(alice, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://web.example.com"]
    refused = await _handshake([(b"host", b"chat.example.com"), (b"origin", b"https://evil.example")], alice.token)
    assert refused["type"] == "websocket.close"  # before accept: the server answers the handshake with 403


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("origin", [b"https://chat.example.com", b"https://web.example.com", None])
async def test_socket_from_the_same_or_an_allowed_origin_or_no_browser_is_accepted(alice, settings, origin):
    settings.CORS_ALLOWED_ORIGINS = ["https://web.example.com"]
    headers = [(b"host", b"chat.example.com")] + ([(b"origin", origin)] if origin else [])
    assert (await _handshake(headers, alice.token))["type"] == "websocket.accept"
