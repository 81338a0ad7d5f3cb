import pytest
from django.test import Client

from accounts.models import User


@pytest.mark.django_db
def test_admin_lists_users_and_devices_for_staff(alice):
    staff = User.objects.create_superuser(phone="+447700900900", password="a-long-admin-password")
    client = Client()
    client.force_login(staff)
    users = client.get("/admin/accounts/user/")
    assert users.status_code == 200
    assert b"Alice" in users.content
    assert b"+447700900001" not in users.content  # phone numbers are not shown in lists
    devices = client.get("/admin/accounts/device/")
    assert devices.status_code == 200
    assert client.get(f"/admin/accounts/user/{alice.user.pk}/change/").status_code == 200
