"""How a packet's total is cut into shares.

Random packets follow the "double average" rule: each draw is uniform in
[1 cent, 2 x the remaining average], so every share is at least a cent, the
expected share is the same whatever the claim order, and the last claimer
gets exactly what is left. The shares are drawn when the packet is sent and
taken in draw order, which gives claimers the same distribution as drawing at
claim time while letting claims run without a packet-wide lock.
"""

from __future__ import annotations

import random
import secrets

_system_random = secrets.SystemRandom()


def split_random(total: int, count: int, rng: random.Random | None = None) -> list[int]:
    """`count` shares of `total` cents by the double-average rule, in draw order.

    Preconditions: 1 <= count <= total. Each draw is capped at what leaves a
    cent for every later share (that cap is never below 1 and only binds for
    the second-to-last draw, where 2 x average equals everything left).
    """
    if count < 1 or total < count:
        raise ValueError("need 1 <= count <= total")
    rng = rng or _system_random
    shares: list[int] = []
    remaining = total
    for left in range(count, 1, -1):
        ceiling = min(2 * remaining // left, remaining - (left - 1))
        share = rng.randint(1, ceiling)
        shares.append(share)
        remaining -= share
    shares.append(remaining)
    return shares


def split_fixed(total: int, count: int) -> list[int]:
    """Equal shares; the caller has checked that `count` divides `total`."""
    if count < 1 or total % count:
        raise ValueError("a fixed packet's total must be a multiple of its count")
    return [total // count] * count
