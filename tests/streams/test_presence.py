"""Presence keys in the cache (Redis in the suite)."""

import time
import uuid

import pytest

from streams.presence import device_ids_online, device_offline, device_online, user_ids_online, user_is_online


def ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


def test_first_socket_brings_the_user_online_and_the_last_takes_it_offline():
    user, phone = ids()
    tablet = str(uuid.uuid4())
    assert device_online(user_id=user, device_id=phone) is True
    assert device_online(user_id=user, device_id=tablet) is False
    assert user_is_online(user_id=user)
    assert device_ids_online([phone, tablet, str(uuid.uuid4())]) == {phone, tablet}
    assert device_offline(user_id=user, device_id=phone) is False
    assert device_ids_online([phone, tablet]) == {tablet}
    assert device_offline(user_id=user, device_id=tablet) is True
    assert not user_is_online(user_id=user)
    assert device_ids_online([phone, tablet]) == set()


def test_refresh_of_a_live_socket_is_not_a_new_online():
    user, phone = ids()
    assert device_online(user_id=user, device_id=phone) is True
    assert device_online(user_id=user, device_id=phone) is False


def test_two_sockets_of_one_device_keep_it_online_until_both_close():
    user, phone = ids()
    device_online(user_id=user, device_id=phone, connection_id="a")
    device_online(user_id=user, device_id=phone, connection_id="b")
    assert device_offline(user_id=user, device_id=phone, connection_id="a") is False
    assert device_ids_online([phone]) == {phone}
    assert device_offline(user_id=user, device_id=phone, connection_id="b") is True
    assert device_ids_online([phone]) == set()


def test_a_socket_that_stops_refreshing_expires():
    """A server that died never calls device_offline; its sockets vanish after the TTL."""
    user, phone = ids()
    device_online(user_id=user, device_id=phone, ttl=1)
    assert user_is_online(user_id=user)
    time.sleep(1.2)
    assert not user_is_online(user_id=user)
    assert device_ids_online([phone]) == set()
    assert device_online(user_id=user, device_id=phone) is True


def test_user_ids_online_answers_for_many_users_at_once():
    (alice, alice_phone), (bob, _bob_phone), (carol, carol_phone) = ids(), ids(), ids()
    device_online(user_id=alice, device_id=alice_phone)
    device_online(user_id=carol, device_id=carol_phone)
    assert user_ids_online([alice, bob, carol]) == {alice, carol}
    assert user_ids_online([]) == set()


@pytest.mark.parametrize("bad", [[], ()])
def test_empty_inputs_cost_nothing(bad):
    assert device_ids_online(bad) == set()
