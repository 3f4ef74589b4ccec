"""The ISO 8601 start time of a summary made per whole second (analyze._iso) is
datetime's text (analyze._iso_slow), microseconds rounded alike."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapcheck.pipeline import _iso, _iso_slow


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-1e11, max_value=1e11),
        st.integers(0, 2**33).map(lambda s: s + 0.5e-6),  # ties of the rounding
        st.tuples(st.integers(0, 2**32), st.integers(0, 10**9 - 1)).map(
            lambda t: t[0] + t[1] / 1e9
        ),  # nanosecond captures
        st.tuples(st.integers(-(2**31), 2**32), st.integers(0, 999_999)).map(
            lambda t: t[0] + t[1] / 1e6
        ),
    )
)  # microsecond captures
def test_iso_is_datetimes(ts):
    assert _iso(ts) == _iso_slow(ts)


@pytest.mark.parametrize(
    "ts",
    [
        0.0,
        -0.5,
        -1e-7,
        0.9999995,
        0.9999994999,
        1.5e-6,
        2.5e-6,
        1700000000.0000005,
        1700000000.9999995,
        253402300799.9999995,
        253402300800.0,
        -62135596800.0,
        -62135596801.0,
        1e18,
        math.inf,
        -math.inf,
        math.nan,
    ],
)
def test_iso_edges(ts):
    assert _iso(ts) == _iso_slow(ts)
    assert _iso(ts) == _iso(ts)  # made again from the cached second
