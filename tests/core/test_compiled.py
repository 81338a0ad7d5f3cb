"""Querysets compiled once per shape (core/compiled.py): the same rows as the ORM, for every user."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import User
from core.compiled import per_user_instances, per_user_sql, per_user_values

pytestmark = pytest.mark.django_db

builds: list[uuid.UUID] = []


def _others_named(user_id: uuid.UUID, name: str):
    builds.append(user_id)
    return User.objects.filter(display_name=name).exclude(pk=user_id).order_by("pk").values_list("pk", flat=True)


def _me(user_id: uuid.UUID):
    builds.append(user_id)
    return User.objects.filter(pk=user_id).only("pk", "display_name")


def _nobody_in_particular(user_id: uuid.UUID):
    return User.objects.filter(display_name="x")


def test_each_user_gets_their_own_rows_from_one_compile(user_factory):
    users = [user_factory() for _ in range(3)]
    User.objects.filter(pk__in=[u.user.pk for u in users]).update(display_name="twin")
    builds.clear()
    for user in users:
        rows = per_user_values(_others_named, user_id=user.user.pk, args=("twin",), shape="t1", model=User)
        expected = sorted(str(u.user.pk) for u in users if u is not user)
        assert sorted(str(uuid.UUID(str(pk))) for pk, in rows) == expected
        assert sorted(str(pk) for pk in _others_named(user.user.pk, "twin")) == expected  # the ORM agrees
    assert len([b for b in builds if b not in {u.user.pk for u in users}]) == 1  # compiled once


def test_args_and_shape_compile_apart(user_factory):
    ann, bob = user_factory(), user_factory()
    User.objects.filter(pk=ann.user.pk).update(display_name="ann")
    User.objects.filter(pk=bob.user.pk).update(display_name="bob")
    stranger = uuid.uuid4()
    assert [str(uuid.UUID(str(pk))) for pk, in per_user_values(
        _others_named, user_id=stranger, args=("ann",), shape="t2", model=User)] == [str(ann.user.pk)]
    assert [str(uuid.UUID(str(pk))) for pk, in per_user_values(
        _others_named, user_id=stranger, args=("bob",), shape="t2", model=User)] == [str(bob.user.pk)]


def test_instances_carry_the_selected_fields(user_factory):
    ann = user_factory()
    User.objects.filter(pk=ann.user.pk).update(display_name="Ann")
    (me,) = per_user_instances(_me, user_id=str(ann.user.pk), shape="t3", model=User)
    assert (me.pk, me.display_name) == (ann.user.pk, "Ann")
    assert per_user_instances(_me, user_id=uuid.uuid4(), shape="t3", model=User) == []


def test_a_query_that_does_not_take_the_user_id_is_refused():
    with pytest.raises(ValueError, match="parameter"):
        per_user_sql(_nobody_in_particular, user_id=uuid.uuid4(), shape="t4", using="default")
