"""The operator's commands: manual rotation and the benchmark seed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User
from contacts.models import DiscoveryPepper, PhoneIndex

pytestmark = pytest.mark.django_db


def test_rotate_command_rotates_only_when_forced_or_due(alice, discovery):
    out = StringIO()
    call_command("contacts_rotate_pepper", stdout=out)
    assert "Not due" in out.getvalue()
    call_command("contacts_rotate_pepper", "--force", stdout=out)
    current = DiscoveryPepper.objects.get(is_current=True)
    assert current.pk != discovery.pepper_id and current.pk in out.getvalue()
    assert PhoneIndex.objects.filter(pepper=current, user=alice.user.pk).exists()


def test_seed_command_creates_indexed_users_and_tops_up():
    call_command("contacts_seed", users=7, chunk=3, stdout=StringIO())
    seeded = User.objects.filter(display_name="seed")
    assert seeded.count() == 7
    pepper = DiscoveryPepper.objects.get(is_current=True)
    assert PhoneIndex.objects.filter(pepper=pepper, user__in=seeded).count() == 7
    call_command("contacts_seed", users=9, stdout=StringIO())
    assert seeded.count() == 9
    assert PhoneIndex.objects.filter(pepper=pepper).count() == 9
