"""HealthFloor: a proof, without evaluating anyone's health, that no position of a group fell below a level.

Health is ``sum_a C_a LT_a P_a / (D P_debt)`` with every term non-negative.  If, since an
exact evaluation at prices ``P0`` whose lowest health was ``h0``, no position changed (same
book version) and every collateral price moved by at least the factor ``r_c`` and the debt
price by at most ``r_d``, then every health is at least ``h0 r_c / r_d``.  When that bound
clears the level with a margin far above floating-point rounding (``MARGIN``), the exact
evaluation would find nobody below it, so the caller can skip it: in steps where prices
drift and nothing is near a threshold (most steps of a run) the O(positions) health pass
becomes a handful of scalar operations.  Results are unchanged: the skipped evaluation
could only have found nobody below the level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from cascadelab.book import PositionBook

FloatArray = npt.NDArray[np.float64]

MARGIN = 1e-9
"""Relative clearance the bound must have over the level (rounding of both evaluations is ~1e-15)."""


class HealthFloor:
    """Lower bound on the health of a fixed group of positions (of the given protocols) at new oracle prices."""

    def __init__(self, book: PositionBook, protocols: Iterable[int]) -> None:
        self.book = book
        # per protocol: the price columns health depends on (collateral assets with LT > 0) and the debt column
        self._terms = [(int(q), [int(a) for a in np.flatnonzero(book.lt[q] > 0)], int(book.debt_asset[q]))
                       for q in sorted(set(protocols))]
        self._usd = book.n_assets
        self._version = -1  # no valid evaluation yet
        self._lowest = 0.0
        self._px0: dict[tuple[int, int], float] = {}

    def reset(self, health: FloatArray, oracle_px: FloatArray) -> None:
        """Remember an exact evaluation: ``health`` of the whole group at ``oracle_px`` (P, A+1), book as it is now."""
        px0 = {(q, c): float(oracle_px[q, c]) for q, cols, d in self._terms for c in (*cols, d)}
        lowest = float(health.min(initial=math.inf))
        if not all(0.0 < v < math.inf for v in px0.values()) or math.isnan(lowest):
            self._version = -1
            return
        self._px0 = px0
        self._lowest = lowest
        self._version = self.book.version

    def holds(self, oracle_px: FloatArray, level: float) -> bool:
        """True if every position's health at ``oracle_px`` is provably >= ``level`` (no evaluation needed)."""
        if self._version != self.book.version:
            return False
        if self._lowest == math.inf:
            return True  # nobody owes anything
        px0 = self._px0
        need = level * (1.0 + MARGIN)
        for q, cols, d in self._terms:
            if not cols:
                return False  # no collateral counts: health is 0 wherever there is debt
            row = oracle_px[q]
            bound = self._lowest
            if d != self._usd:
                rise = float(row[d]) / px0[q, d]
                if not 0.0 < rise < math.inf:
                    return False
                bound /= rise
            for c in cols:
                if not bound * (float(row[c]) / px0[q, c]) >= need:  # False for NaN too
                    return False
        return True
