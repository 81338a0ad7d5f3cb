"""Sunset read-only means read-only: one gate in front of every HTTP write (config/asgi.py),
one check in the socket's frame dispatch, and sockets closed with 4503 at shutdown.

The HTTP tests go through the real ASGI application (the gate sits in front of Django
and of media's streamed tus PATCH), so they use committed data (transaction=True)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from channels.db import database_sync_to_async
from drf_spectacular.generators import SchemaGenerator

from config.asgi import application
from core import sunset
from tests.exports.conftest import make_sunset
from tests.messaging.conftest import new_direct

pytestmark = pytest.mark.django_db(transaction=True)

WRITE_METHODS = ("post", "put", "patch", "delete")
# What stays writable from read-only on (core.sunset.READ_ONLY_ALLOWED), named here on purpose:
# a new write endpoint is refused unless someone adds it to both lists.
EXPECTED_ALLOWED = {
    ("POST", "/api/v1/auth/otp/request"), ("POST", "/api/v1/auth/otp/verify"), ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/me/exports"), ("DELETE", "/api/v1/me"),
    ("DELETE", "/api/v1/devices/{id}"), ("PUT", "/api/v1/devices/current/push"),
    ("DELETE", "/api/v1/devices/current/push"),
    ("POST", "/api/v1/conversations/{id}/read"), ("POST", "/api/v1/messages/{id}/played"),
    ("POST", "/api/v1/blocks"), ("DELETE", "/api/v1/blocks/{id}"), ("POST", "/api/v1/reports"),
    ("POST", "/api/v1/payments/webhooks/{id}"),
}


def write_operations() -> list[tuple[str, str]]:
    """Every (METHOD, path template) of the OpenAPI document that changes something."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return sorted((method.upper(), template) for template, operations in document["paths"].items()
                  if template.startswith("/api/v1/") for method in operations if method in WRITE_METHODS)


def concrete(template: str) -> str:
    return re.sub(r"\{[^/]+\}", lambda _: str(uuid.uuid4()), template)


def normalised(template: str) -> str:
    return re.sub(r"\{[^/]+\}", "{id}", template)


def asgi_client(token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver",
                             headers=headers)


async def test_every_write_endpoint_of_the_openapi_document_answers_403_service_read_only(alice):
    await database_sync_to_async(make_sunset)("read_only")
    operations = await database_sync_to_async(write_operations)()
    assert len(operations) >= 30, operations  # the document really lists the API's writes
    refused, allowed = [], set()
    async with asgi_client(alice.token) as client:
        for method, template in operations:
            path = concrete(template)
            if not sunset.is_write(method, path):
                allowed.add((method, normalised(template)))
                continue
            response = await client.request(method, path, json={}, headers={"tus-resumable": "1.0.0"})
            body = response.json()
            assert (response.status_code, body["error"]["code"]) == (403, "service_read_only"), (method, template)
            assert body["error"]["details"]["action"].startswith(f"{method} /api/v1/")
            refused.append((method, template))
    assert allowed == EXPECTED_ALLOWED
    for must in [("POST", "/api/v1/conversations"), ("PATCH", "/api/v1/me"), ("PUT", "/api/v1/me/avatar"),
                 ("POST", "/api/v1/conversations/{conversation_id}/members"),
                 ("PATCH", "/api/v1/messages/{message_id}"), ("DELETE", "/api/v1/messages/{message_id}"),
                 ("POST", "/api/v1/attachments"),
                 ("POST", "/api/v1/conversations/{conversation_id}/red-packets"),
                 ("PATCH", "/api/v1/uploads/{upload_id}"), ("POST", "/api/v1/contacts/sync")]:
        assert must in refused, must


async def test_reads_and_the_allow_list_still_work_when_read_only(alice, bob):
    direct = await database_sync_to_async(new_direct)(alice, bob)
    await database_sync_to_async(make_sunset)("read_only")
    async with asgi_client(alice.token) as client:
        assert (await client.get("/api/v1/conversations?_=1")).status_code == 200
        assert (await client.post(f"/api/v1/conversations/{direct}/read", json={"seq": 0})).status_code == 204
        exported = await client.post("/api/v1/me/exports")
        assert exported.status_code == 202
        refused = await client.post("/api/v1/conversations", json={"type": "direct", "user_id": str(bob.user.pk)})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "service_read_only"


async def test_writes_pass_the_gate_before_read_only(alice, bob):
    await database_sync_to_async(make_sunset)("announced")
    async with asgi_client(alice.token) as client:
        created = await client.post("/api/v1/conversations", json={"type": "direct", "user_id": str(bob.user.pk)})
        assert created.status_code == 201
