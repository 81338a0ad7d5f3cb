"""Server-made messages (`call`, `red_packet`): posted by other apps through `message_post`."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from core.errors import NotFound
from messaging.models import Message
from messaging.services import message_post
from tests.messaging.conftest import new_group, stream_events

RED_PACKET = {"red_packet": {"id": "p1", "total": 100, "count": 2, "mode": "random", "greeting": "恭喜发财"}}


@pytest.mark.django_db
def test_message_post_stores_the_payload_under_its_key_and_emits_message_new(alice, bob, carol, direct):
    message, created = message_post(sender_id=alice.user.pk, conversation_id=direct, type="red_packet",
                                    content=RED_PACKET, client_id=uuid.uuid4())
    assert created and message["type"] == "red_packet" and message["seq"] == 1
    assert message["red_packet"] == RED_PACKET["red_packet"]
    for who in (alice, bob):
        assert stream_events(who, "message.new")[-1][1]["red_packet"] == RED_PACKET["red_packet"]
    assert stream_events(carol, "message.new") == []
    history = bob.client.get(f"/api/v1/conversations/{direct}/messages").json()["messages"]
    assert history[-1]["red_packet"] == RED_PACKET["red_packet"]


@pytest.mark.django_db
def test_message_post_is_idempotent_by_client_id(alice, direct):
    client_id = uuid.uuid4()
    first, _ = message_post(sender_id=alice.user.pk, conversation_id=direct, type="call",
                            content={"call": {"call_id": "c"}}, client_id=client_id)
    again, created = message_post(sender_id=alice.user.pk, conversation_id=direct, type="call",
                                  content={"call": {"call_id": "c"}}, client_id=client_id)
    assert not created and again == first
    assert Message.objects.filter(conversation_id=direct).count() == 1


@pytest.mark.django_db
def test_message_post_by_a_non_member_is_not_found(alice, bob, carol):
    group = new_group(alice, bob)
    with pytest.raises(NotFound):
        message_post(sender_id=carol.user.pk, conversation_id=group, type="call", content={"call": {}},
                     client_id=uuid.uuid4())


@pytest.mark.django_db
def test_message_post_rolls_back_with_the_callers_transaction(alice, bob, direct):
    with pytest.raises(RuntimeError), transaction.atomic():
        message_post(sender_id=alice.user.pk, conversation_id=direct, type="red_packet", content=RED_PACKET,
                     client_id=uuid.uuid4())
        raise RuntimeError("the debit failed")
    assert not Message.objects.filter(conversation_id=direct).exists()
    assert stream_events(bob, "message.new") == []


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["call", "red_packet"])
def test_clients_cannot_send_server_made_types(alice, direct, kind):
    response = alice.client.post(f"/api/v1/conversations/{direct}/messages",
                                 {"client_id": str(uuid.uuid4()), "type": kind, "text": "x"}, format="json")
    assert response.status_code == 400
    assert "type" in response.json()["error"]["details"]
