"""Sending, claiming and viewing red packets through the API, with every rule of the contract."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Message
from payments.models import TransactionKind
from redpackets.models import Packet, Share
from tests.exports.conftest import make_sunset
from tests.factories import sign_in
from tests.messaging.conftest import stream_events
from tests.payments.conftest import ledger_counts
from tests.redpackets.conftest import (
    assert_ledger_ok,
    balance,
    claim,
    error_code,
    fund,
    new_group,
    send_packet,
)

pytestmark = pytest.mark.usefixtures("payments_on")


# --- Sending -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sending_debits_at_once_and_posts_a_red_packet_message(alice, bob, carol, direct):
    fund(alice, 1000)
    response = send_packet(alice, direct, total=888, count=1, greeting="恭喜发财")
    assert response.status_code == 201, response.json()
    packet = response.json()
    assert packet["total"] == 888 and packet["count"] == 1 and packet["status"] == "open"
    assert packet["remaining"] == 888 and packet["claims"] == [] and packet["best_luck_user_id"] is None
    assert packet["sender_id"] == str(alice.user.pk) and packet["conversation_id"] == direct
    assert balance(alice) == 112
    history = bob.client.get(f"/api/v1/conversations/{direct}/messages").json()["messages"]
    assert history[-1]["type"] == "red_packet" and history[-1]["sender_id"] == str(alice.user.pk)
    assert history[-1]["red_packet"] == {"id": packet["id"], "total": 888, "count": 1, "mode": "random",
                                         "greeting": "恭喜发财"}
    # In sync for both members (the sender's other devices too), never for an outsider.
    for who in (alice, bob):
        assert stream_events(who, "message.new")[-1][1]["red_packet"]["id"] == packet["id"]
    assert stream_events(carol, "message.new") == []
    wallet = stream_events(alice, "wallet.updated")
    assert [data["balance"] for _, data in wallet] == [1000, 112]
    assert wallet[-1][1]["transaction"]["kind"] == "red_packet_send"
    assert wallet[-1][1]["transaction"]["red_packet_id"] == packet["id"]
    assert wallet[-1][1]["transaction"]["amount"] == -888
    assert_ledger_ok()


@pytest.mark.django_db
def test_a_retried_send_returns_the_first_packet_and_debits_once(alice, direct):
    fund(alice, 1000)
    client_id = str(uuid.uuid4())
    body = {"client_id": client_id, "total": 300, "count": 1, "mode": "random"}
    first = alice.client.post(f"/api/v1/conversations/{direct}/red-packets", body, format="json")
    again = alice.client.post(f"/api/v1/conversations/{direct}/red-packets", {**body, "total": 999}, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["total"] == 300
    assert balance(alice) == 700
    assert Message.objects.filter(type="red_packet").count() == 1 and Packet.objects.count() == 1


@pytest.mark.django_db
def test_a_client_id_already_used_by_a_message_is_a_conflict_and_debits_nothing(alice, direct):
    fund(alice, 1000)
    client_id = str(uuid.uuid4())
    sent = alice.client.post(f"/api/v1/conversations/{direct}/messages",
                             {"client_id": client_id, "type": "text", "text": "hi"}, format="json")
    assert sent.status_code == 201
    response = alice.client.post(f"/api/v1/conversations/{direct}/red-packets",
                                 {"client_id": client_id, "total": 100, "count": 1, "mode": "random"}, format="json")
    assert response.status_code == 409 and error_code(response) == "conflict"
    assert balance(alice) == 1000 and Packet.objects.count() == 0


@pytest.mark.django_db
def test_insufficient_funds_is_409_and_nothing_is_debited_or_posted(alice, bob, direct):
    fund(alice, 99)
    before = ledger_counts()
    response = send_packet(alice, direct, total=100)
    assert response.status_code == 409 and error_code(response) == "insufficient_funds"
    assert balance(alice) == 99 and ledger_counts() == before
    assert Packet.objects.count() == 0 and Share.objects.count() == 0
    assert not Message.objects.filter(type="red_packet").exists()
    assert stream_events(bob, "message.new") == []
    assert_ledger_ok()


@pytest.mark.django_db
def test_an_empty_wallet_is_insufficient_funds(bob, alice, direct):
    response = send_packet(bob, direct, total=1)
    assert response.status_code == 409 and error_code(response) == "insufficient_funds"


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), [
    ("total", "5"), ("total", 5.0), ("total", True), ("total", None), ("total", 0), ("total", -100),
    ("total", 20001), ("total", 2**70),
    ("count", "1"), ("count", 1.0), ("count", False), ("count", 0), ("count", 101),
    ("mode", "lucky"), ("mode", 1), ("greeting", 5), ("greeting", "x" * 65), ("client_id", 7),
    ("client_id", "nope"), ("bonus", 1),
])
def test_bad_input_is_400_naming_the_field_and_nothing_is_written(alice, bob, carol, field, value):
    group = new_group(alice, bob, carol)
    fund(alice, 20000)
    body = {"client_id": str(uuid.uuid4()), "total": 300, "count": 3, "mode": "random", field: value}
    response = alice.client.post(f"/api/v1/conversations/{group}/red-packets", body, format="json")
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error" and field in response.json()["error"]["details"]
    assert balance(alice) == 20000 and Packet.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("total", "count", "mode", "field"), [
    (2, 3, "random", "total"),      # fewer cents than shares
    (10, 3, "fixed", "total"),      # equal shares need a multiple
    (300, 4, "random", "count"),    # more shares than the group's 3 members
])
def test_shares_must_fit_the_total_and_the_members(alice, bob, carol, total, count, mode, field):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    response = send_packet(alice, group, total=total, count=count, mode=mode)
    assert response.status_code == 400 and field in response.json()["error"]["details"]
    assert balance(alice) == 1000


@pytest.mark.django_db
def test_the_limits_are_settings(alice, bob, carol, settings):
    settings.RED_PACKET_MAX_TOTAL = 500
    settings.RED_PACKET_MAX_COUNT = 2
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    assert "total" in send_packet(alice, group, total=501, count=2).json()["error"]["details"]
    assert "count" in send_packet(alice, group, total=300, count=3).json()["error"]["details"]
    assert send_packet(alice, group, total=500, count=2).status_code == 201


@pytest.mark.django_db
def test_a_direct_packet_has_exactly_one_share(alice, direct):
    fund(alice, 1000)
    response = send_packet(alice, direct, total=100, count=2)
    assert response.status_code == 400 and "count" in response.json()["error"]["details"]


@pytest.mark.django_db
def test_a_packet_in_a_conversation_you_are_not_in_is_not_found(alice, bob, carol, direct):
    fund(carol, 1000)
    assert send_packet(carol, direct).status_code == 404
    assert send_packet(carol, str(uuid.uuid4())).status_code == 404
    assert send_packet(carol, "not-an-id").status_code == 404
    assert balance(carol) == 1000


@pytest.mark.django_db
def test_only_admins_send_packets_in_a_broadcast(alice, bob, carol):
    channel = new_group(alice, bob, carol, type="broadcast", title="News")
    fund(bob, 1000)
    response = send_packet(bob, channel, total=100, count=1)
    assert response.status_code == 403 and balance(bob) == 1000
    fund(alice, 1000)
    assert send_packet(alice, channel, total=100, count=2).status_code == 201


@pytest.mark.django_db
def test_fixed_packets_have_equal_shares(alice, bob, carol):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=300, count=3, mode="fixed").json()
    assert [claim(who, packet["id"]).json()["amount"] for who in (alice, bob, carol)] == [100, 100, 100]


# --- Claiming ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_claiming_a_direct_packet_credits_the_recipient_once(alice, bob, direct, pushes):
    bob.device.push_token = "fcm-token-bob"
    bob.device.save()
    alice.device.push_token = "fcm-token-alice"
    alice.device.save()
    fund(alice, 1000)
    packet = send_packet(alice, direct, total=520).json()
    first = claim(bob, packet["id"])
    assert first.status_code == 200 and first.json() == {"amount": 520}
    again = claim(bob, packet["id"])
    assert again.status_code == 200 and again.json() == {"amount": 520}
    assert balance(bob) == 520 and balance(alice) == 480
    (_, claimed), = stream_events(alice, "red_packet.claimed")
    assert claimed == {"red_packet_id": packet["id"], "conversation_id": direct, "user_id": str(bob.user.pk),
                       "amount": 520, "claimed_at": claimed["claimed_at"]}
    (_, wallet), = stream_events(bob, "wallet.updated")
    assert wallet["balance"] == 520 and wallet["transaction"]["kind"] == TransactionKind.RED_PACKET_CLAIM
    assert stream_events(bob, "red_packet.claimed") == []
    push, = pushes
    assert push["user_id"] == str(alice.user.pk) and push["kind"] == "red_packet.claimed"
    assert "Bob" in push["body"] and push["collapse_key"] == f"red_packet:{packet['id']}"
    detail = alice.client.get(f"/api/v1/red-packets/{packet['id']}").json()
    assert detail["status"] == "empty" and detail["remaining"] == 0
    assert detail["best_luck_user_id"] == str(bob.user.pk)
    assert detail["claims"] == [{"user_id": str(bob.user.pk), "amount": 520, "claimed_at": claimed["claimed_at"]}]
    assert_ledger_ok()


@pytest.mark.django_db
def test_the_sender_cannot_claim_their_own_direct_packet(alice, direct):
    fund(alice, 1000)
    packet = send_packet(alice, direct).json()
    response = claim(alice, packet["id"])
    assert response.status_code == 403 and balance(alice) == 900


@pytest.mark.django_db
def test_someone_elses_direct_packet_is_not_found_to_outsiders(alice, bob, carol, direct):
    fund(alice, 1000)
    packet = send_packet(alice, direct).json()
    for response in (claim(carol, packet["id"]), carol.client.get(f"/api/v1/red-packets/{packet['id']}")):
        assert response.status_code == 404 and error_code(response) == "not_found"
    assert balance(carol) == 0
    for bad in (str(uuid.uuid4()), "nope"):
        assert claim(bob, bad).status_code == 404
        assert bob.client.get(f"/api/v1/red-packets/{bad}").status_code == 404


@pytest.mark.django_db
def test_a_group_packet_is_shared_until_empty_and_the_sender_may_claim(alice, bob, carol):
    dave = sign_in(display_name="Dave")
    group = new_group(alice, bob, carol, dave)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=1000, count=3).json()
    amounts = [claim(who, packet["id"]) for who in (alice, bob, carol)]
    assert [r.status_code for r in amounts] == [200, 200, 200]
    assert sum(r.json()["amount"] for r in amounts) == 1000
    late = claim(dave, packet["id"])
    assert late.status_code == 410 and error_code(late) == "red_packet_empty"
    assert balance(dave) == 0
    detail = dave.client.get(f"/api/v1/red-packets/{packet['id']}").json()
    assert detail["status"] == "empty" and detail["remaining"] == 0 and detail["remaining_count"] == 0
    assert [c["user_id"] for c in detail["claims"]] == [str(w.user.pk) for w in (alice, bob, carol)]
    best = max(detail["claims"], key=lambda c: c["amount"])["amount"]
    assert next(c for c in detail["claims"] if c["user_id"] == detail["best_luck_user_id"])["amount"] == best
    # Three red_packet.claimed to the sender, one per claim (her own included).
    assert len(stream_events(alice, "red_packet.claimed")) == 3
    assert_ledger_ok()


@pytest.mark.django_db
def test_best_luck_is_named_only_once_the_packet_is_empty(alice, bob, carol):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=100, count=2).json()
    claim(bob, packet["id"])
    detail = bob.client.get(f"/api/v1/red-packets/{packet['id']}").json()
    assert detail["status"] == "open" and detail["best_luck_user_id"] is None and detail["remaining_count"] == 1


@pytest.mark.django_db
def test_after_expiry_claims_get_410_expired_but_an_earlier_claim_still_answers(alice, bob, carol):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=100, count=2).json()
    first = claim(bob, packet["id"]).json()["amount"]
    Packet.objects.filter(pk=packet["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = claim(carol, packet["id"])
    assert late.status_code == 410 and error_code(late) == "red_packet_expired"
    assert claim(bob, packet["id"]).json() == {"amount": first}
    assert carol.client.get(f"/api/v1/red-packets/{packet['id']}").json()["status"] == "expired"
    assert balance(carol) == 0


@pytest.mark.django_db
def test_a_member_who_left_can_no_longer_see_or_claim(alice, bob, carol):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=100, count=2).json()
    assert carol.client.delete(f"/api/v1/conversations/{group}/members/{carol.user.pk}").status_code == 204
    assert claim(carol, packet["id"]).status_code == 404
    assert carol.client.get(f"/api/v1/red-packets/{packet['id']}").status_code == 404


@pytest.mark.django_db
def test_two_devices_of_one_user_get_one_share(alice, bob, carol):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=100, count=3).json()
    tablet = bob.another_device()
    one, two = claim(bob, packet["id"]), claim(tablet, packet["id"])
    assert one.json() == two.json()
    assert Share.objects.filter(claimed_by=bob.user).count() == 1


@pytest.mark.django_db
def test_read_only_sunset_refuses_sending_and_claiming(alice, bob, direct):
    fund(alice, 1000)
    packet = send_packet(alice, direct).json()
    make_sunset("read_only")
    refused = send_packet(alice, direct)
    assert refused.status_code == 403 and error_code(refused) == "service_read_only"
    refused = claim(bob, packet["id"])
    assert refused.status_code == 403 and error_code(refused) == "service_read_only"
    assert balance(alice) == 900 and balance(bob) == 0
    assert bob.client.get(f"/api/v1/red-packets/{packet['id']}").status_code == 200


@pytest.mark.django_db
def test_red_packet_endpoints_need_a_token(api, alice, direct):
    assert api.post(f"/api/v1/conversations/{direct}/red-packets", {}, format="json").status_code == 401
    assert api.post(f"/api/v1/red-packets/{uuid.uuid4()}/claim").status_code == 401
