"""The split of a packet into shares: properties over every total and count within the limits."""

from __future__ import annotations

import random

import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from redpackets.split import split_fixed, split_random


@st.composite
def totals_and_counts(draw: st.DrawFn) -> tuple[int, int]:
    count = draw(st.integers(min_value=1, max_value=settings.RED_PACKET_MAX_COUNT))
    total = draw(st.integers(min_value=count, max_value=settings.RED_PACKET_MAX_TOTAL))
    return total, count


@given(totals_and_counts(), st.randoms(use_true_random=False))
@hypothesis_settings(max_examples=500, deadline=None)
def test_random_shares_sum_exactly_are_at_least_a_cent_and_never_above_twice_the_remaining_average(
        total_count: tuple[int, int], rng: random.Random) -> None:
    total, count = total_count
    shares = split_random(total, count, rng)
    assert len(shares) == count
    assert sum(shares) == total
    assert all(isinstance(share, int) and share >= 1 for share in shares)
    remaining = total
    for index, share in enumerate(shares):
        left = count - index
        # "uniform in [1 cent, 2 x remaining average]": never above twice what is left per share.
        assert share * left <= 2 * remaining, (index, share, remaining, left)
        remaining -= share
    assert remaining == 0


@given(totals_and_counts())
@hypothesis_settings(max_examples=200, deadline=None)
def test_fixed_shares_are_equal_and_sum_exactly(total_count: tuple[int, int]) -> None:
    total, count = total_count
    total -= total % count
    shares = split_fixed(total, count)
    assert len(shares) == count and sum(shares) == total and len(set(shares)) == 1 and shares[0] >= 1


def test_the_extremes():
    assert split_random(100, 100) == [1] * 100
    assert split_random(1, 1) == [1]
    assert split_random(20000, 1) == [20000]
    assert all(sum(split_random(101, 100)) == 101 for _ in range(50))


def test_draws_are_spread_over_the_whole_range():
    """Over many draws the first share of 1000 cents in 10 takes values from 1 to 200 (2 x 100)."""
    rng = random.Random(7)
    firsts = [split_random(1000, 10, rng)[0] for _ in range(5000)]
    assert min(firsts) <= 5 and max(firsts) >= 195 and max(firsts) <= 200
    assert 90 <= sum(firsts) / len(firsts) <= 110  # the expected share is the average


@pytest.mark.parametrize(("total", "count"), [(5, 6), (0, 1), (10, 0)])
def test_impossible_random_splits_are_refused(total, count):
    with pytest.raises(ValueError):
        split_random(total, count)


@pytest.mark.parametrize(("total", "count"), [(10, 3), (10, 0)])
def test_impossible_fixed_splits_are_refused(total, count):
    with pytest.raises(ValueError):
        split_fixed(total, count)
