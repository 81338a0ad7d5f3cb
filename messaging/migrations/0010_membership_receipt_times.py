from django.db import migrations, models


class Migration(migrations.Migration):
    """When each member's delivered/read pointer last moved (for GET /messages/{id}/receipts).

    Existing pointers above 0 get the migration's time: a message below a pointer was
    delivered/read by then at the latest, which is what the column means.
    """

    dependencies = [
        ('messaging', '0009_group_invitations'),
    ]

    operations = [
        migrations.AddField(
            model_name='membership',
            name='delivered_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='membership',
            name='read_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunSQL(
            "UPDATE messaging_membership SET delivered_at = CURRENT_TIMESTAMP WHERE delivered_seq > 0;"
            "UPDATE messaging_membership SET read_at = CURRENT_TIMESTAMP WHERE read_seq > 0;",
            migrations.RunSQL.noop,
        ),
    ]
