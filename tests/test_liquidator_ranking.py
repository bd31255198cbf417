"""The keeper's partial ranking (agents.liquidators.stable_smallest) equals the head of a stable sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.liquidators import stable_smallest


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.sampled_from([-2.0, -1.0, -0.0, 0.0, 0.5, 3.0]) | st.floats(-1e6, 1e6), max_size=80),
       count=st.integers(1, 90))
def test_stable_smallest_is_the_head_of_a_stable_argsort(keys: list[float], count: int) -> None:
    """Ties (including -0.0 == 0.0) keep index order, exactly as argsort(kind="stable") does."""
    arr = np.array(keys, dtype=np.float64)
    expected = np.argsort(arr, kind="stable")[:count]
    assert np.array_equal(stable_smallest(arr, count), expected)
