"""message.new events stored a copy of the message per recipient; they now point at it (streams.Event.ref_id)."""

import uuid

from django.db import migrations

BATCH = 5000


def events_reference_messages(apps, schema_editor):
    Event = apps.get_model("streams", "Event")
    pending = Event.objects.filter(type="message.new", ref_id__isnull=True).exclude(data__isnull=True)
    while True:
        rows = list(pending.values_list("pk", "data")[:BATCH])
        if not rows:
            return
        for pk, data in rows:
            message_id = (data or {}).get("id")
            Event.objects.filter(pk=pk).update(ref_id=uuid.UUID(message_id) if message_id else None,
                                               data=None if message_id else data)
        if len(rows) < BATCH:
            return


def events_carry_messages(apps, schema_editor):
    Event = apps.get_model("streams", "Event")
    Message = apps.get_model("messaging", "Message")
    for event in Event.objects.filter(type="message.new", ref_id__isnull=False).iterator():
        message = Message.objects.filter(pk=event.ref_id).first()
        event.data = {"id": str(event.ref_id), "conversation_id": str(message.conversation_id), "seq": message.seq,
                      "sender_id": str(message.sender_id), "text": message.text} if message else {}
        event.ref_id = None
        event.save(update_fields=["data", "ref_id"])


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0002_message_content_and_server_made_types"),
        ("streams", "0002_event_references_a_row"),
    ]

    operations = [migrations.RunPython(events_reference_messages, events_carry_messages)]
