"""Range header parsing (RFC 9110 section 14): single ranges only."""

from __future__ import annotations

import pytest

from media.serving import RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=999-999", (999, 999)),
        ("bytes = 0 - 9", (0, 9)),
        (None, None),
        ("", None),
        ("bytes=-", None),
        ("bytes=9-0", None),
        ("bytes=0-1,4-5", None),
        ("pages=1-2", None),
        ("bytes=x-y", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0"])
def test_unsatisfiable_ranges_raise_416(header):
    with pytest.raises(RangeNotSatisfiable) as raised:
        parse_range(header, 1000)

    assert raised.value.status == 416
    assert raised.value.size == 1000
