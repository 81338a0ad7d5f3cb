"""The event stream moves from `realtime` into its own app: the tables are renamed, no data moves."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_users_devices_verifications'),
        ('realtime', '0001_event_stream'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE realtime_userstream RENAME TO streams_userstream",
                    "ALTER TABLE streams_userstream RENAME TO realtime_userstream",
                ),
                migrations.RunSQL(
                    "ALTER TABLE realtime_event RENAME TO streams_event",
                    "ALTER TABLE streams_event RENAME TO realtime_event",
                ),
            ],
            state_operations=[
                migrations.CreateModel(
                    name='UserStream',
                    fields=[
                        ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to=settings.AUTH_USER_MODEL)),
                        ('last_position', models.BigIntegerField(default=0)),
                    ],
                ),
                migrations.CreateModel(
                    name='Event',
                    fields=[
                        ('id', models.BigAutoField(primary_key=True, serialize=False)),
                        ('position', models.BigIntegerField()),
                        ('type', models.CharField(max_length=48)),
                        ('data', models.JSONField()),
                        ('created_at', models.DateTimeField()),
                        ('user', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'constraints': [models.UniqueConstraint(fields=('user', 'position'), name='event_user_position_uniq')],
                    },
                ),
            ],
        ),
    ]
