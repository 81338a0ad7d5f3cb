from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_user_moments_settings'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='group_add',
            field=models.CharField(choices=[('everyone', 'Everyone'), ('contacts', 'Contacts'), ('nobody', 'Nobody')], default='contacts', db_default='contacts', max_length=8),
        ),
    ]
