"""Array helpers shared by the step loop and the run-end analysis."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def unique_inverse(values: IntArray) -> tuple[IntArray, IntArray]:
    """``np.unique(values, return_inverse=True)``, without the sort when every value is the same.

    The batches grouped this way (a step's fills by protocol, a fill batch by keeper) almost always
    hold one value, and the sort costs ~10 us a call.
    """
    if values.size and values[0] == values[-1] and (values == values[0]).all():
        return values[:1], np.zeros(values.size, dtype=np.int64)
    return np.unique(values, return_inverse=True)
