"""The stream's models now belong to `streams` (its 0001 renamed the tables); forget them here."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('realtime', '0001_event_stream'),
        ('streams', '0001_move_event_stream_from_realtime'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='Event'),
                migrations.DeleteModel(name='UserStream'),
            ],
        ),
    ]
