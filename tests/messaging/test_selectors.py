import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import NotFound
from messaging import selectors, services
from messaging.models import Message
from tests.messaging.conftest import an_attachment, new_direct, new_group, send_text


@pytest.mark.django_db
def test_conversation_member_ids_lists_current_members_and_hides_foreign_ones(alice, bob, carol):
    group = new_group(alice, bob, carol)
    assert set(selectors.conversation_member_ids(user_id=bob.user.pk, conversation_id=group)) == {
        str(alice.user.pk), str(bob.user.pk), str(carol.user.pk)}
    services.member_remove(actor=carol.user, conversation_id=group, user_id=carol.user.pk)
    with pytest.raises(NotFound):
        selectors.conversation_member_ids(user_id=carol.user.pk, conversation_id=group)
    with pytest.raises(NotFound):
        selectors.conversation_member_ids(user_id=alice.user.pk, conversation_id="garbage")


@pytest.mark.django_db
def test_presence_audience_is_the_peers_of_direct_and_small_groups(alice, bob, carol, user_factory, settings):
    dave, erin = user_factory(), user_factory()
    new_direct(alice, bob)
    new_group(alice, carol)
    services.conversation_create(creator=dave.user, type="broadcast", title="News", member_ids=[alice.user.pk])
    assert set(selectors.presence_audience(user_id=alice.user.pk)) == {str(bob.user.pk), str(carol.user.pk)}
    settings.MESSAGING_INLINE_FANOUT_MAX = 2
    new_group(erin, alice, dave)  # three members: too big for presence now
    assert set(selectors.presence_audience(user_id=alice.user.pk)) == {str(bob.user.pk), str(carol.user.pk)}


@pytest.mark.django_db
def test_unread_total_counts_unmuted_conversations_only(alice, bob, carol):
    with_bob = new_direct(alice, bob)
    with_carol = new_direct(alice, carol)
    send_text(bob, with_bob)
    send_text(bob, with_bob)
    send_text(carol, with_carol)
    send_text(alice, with_carol)
    assert selectors.unread_total(user_id=alice.user.pk) == 3
    services.conversation_mute(user=alice.user, conversation_id=with_carol, until=timezone.now() + timedelta(days=1))
    assert selectors.unread_total(user_id=alice.user.pk) == 2
    services.conversation_read(user=alice.user, conversation_id=with_bob, seq=2)
    assert selectors.unread_total(user_id=alice.user.pk) == 0


@pytest.mark.django_db
def test_user_can_see_attachment_of_conversations_they_were_in_when_it_was_sent(alice, bob, carol):
    group = new_group(alice, bob, carol)
    early, late = an_attachment(alice, "image"), an_attachment(alice, "file")
    alice.client.post(f"/api/v1/conversations/{group}/messages",
                      {"client_id": str(uuid.uuid4()), "type": "image", "attachment_id": early}, format="json")
    services.member_remove(actor=carol.user, conversation_id=group, user_id=carol.user.pk)
    alice.client.post(f"/api/v1/conversations/{group}/messages",
                      {"client_id": str(uuid.uuid4()), "type": "file", "attachment_id": late}, format="json")
    assert selectors.user_can_see_attachment(user_id=bob.user.pk, attachment_id=early)
    assert selectors.user_can_see_attachment(user_id=carol.user.pk, attachment_id=early)
    assert not selectors.user_can_see_attachment(user_id=carol.user.pk, attachment_id=late)
    outsider = new_direct(alice, bob)
    assert outsider
    assert not selectors.user_can_see_attachment(user_id=carol.user.pk, attachment_id=str(uuid.uuid4()))
    assert not selectors.user_can_see_attachment(user_id=bob.user.pk, attachment_id="garbage")
    message = Message.objects.get(attachment_id=early)
    services.message_delete(user=alice.user, message_id=message.pk, scope="everyone")
    assert not selectors.user_can_see_attachment(user_id=bob.user.pk, attachment_id=early)


@pytest.mark.django_db
def test_message_public_blanks_a_recalled_message(alice, bob, direct):
    sent = send_text(alice, direct, "secret").json()
    message = Message.objects.get(pk=sent["id"])
    assert selectors.message_public(message) == sent
    services.message_delete(user=alice.user, message_id=message.pk, scope="everyone")
    message.refresh_from_db()
    public = selectors.message_public(message)
    assert public["deleted"] is True and public["text"] == "" and public["seq"] == sent["seq"]


@pytest.mark.django_db
def test_device_cursor_position_is_where_the_next_hello_resumes(alice, bob, direct):
    assert selectors.device_cursor_position(device_id=bob.device.pk) == 0
    assert selectors.device_cursor_get(device_id=bob.device.pk) == ""
    send_text(alice, direct)
    services.device_ack(user=bob.user, device_id=bob.device.pk, cursor="2")
    assert selectors.device_cursor_position(device_id=bob.device.pk) == 2
    assert selectors.device_cursor_get(device_id=bob.device.pk) == "2"
