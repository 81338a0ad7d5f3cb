"""Unknown query parameters are ignored (cache-busters); unknown body fields are still refused."""

import uuid

import pytest


@pytest.mark.django_db
def test_unknown_query_parameters_are_ignored_on_lists_and_history(alice, bob):
    created = alice.client.post("/api/v1/conversations", {"type": "direct", "user_id": str(bob.user.id)},
                                format="json")
    conversation_id = created.json()["id"]
    for text in ("one", "two", "three"):
        alice.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                          {"client_id": str(uuid.uuid4()), "type": "text", "text": text}, format="json")

    listed = alice.client.get("/api/v1/conversations?_=1732640000000&utm_source=x")
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()["conversations"]] == [conversation_id]

    history = bob.client.get(f"/api/v1/conversations/{conversation_id}/messages?limit=2&_=123")
    assert history.status_code == 200
    assert [m["text"] for m in history.json()["messages"]] == ["two", "three"]

    assert alice.client.get("/api/v1/me?_=1").status_code == 200
    assert alice.client.get("/api/v1/sync?_=1&limit=1").status_code == 200


@pytest.mark.django_db
def test_known_query_parameters_are_still_validated(alice):
    response = alice.client.get("/api/v1/sync?limit=banana&_=1")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "limit" in response.json()["error"]["details"]


@pytest.mark.django_db
def test_unknown_body_fields_are_still_refused_even_with_a_cache_buster(alice):
    response = alice.client.patch("/api/v1/me?_=1", {"display_name": "A", "admin": True}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"admin": ["Unknown field."]}
    alice.user.refresh_from_db()
    assert alice.user.display_name == "Alice"


@pytest.mark.django_db
def test_openapi_document_says_unknown_query_parameters_are_ignored(api):
    document = api.get("/api/schema/?format=json&_=1")
    assert document.status_code == 200
    assert "are ignored" in document.json()["info"]["description"]
