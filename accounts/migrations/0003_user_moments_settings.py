from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_user_suspended_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="moments_window",
            field=models.CharField(choices=[("all", "All"), ("6m", "Six Months"), ("1m", "One Month"),
                                            ("3d", "Three Days")], db_default="all", default="all",
                                   max_length=3),
        ),
        migrations.AddField(
            model_name="user",
            name="moments_notifications",
            field=models.BooleanField(db_default=True, default=True),
        ),
    ]
