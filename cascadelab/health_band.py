"""HealthBand: a proof, without evaluating anyone's health, that the positions below a health level are unchanged.

Health is ``sum_a C_a LT_a P_a / (D P_debt)`` with every term non-negative.  If no position
changed since an exact evaluation at prices ``P0`` (same book version), and each collateral
price moved by a factor between ``r_lo`` and ``r_hi`` and the debt price by ``r_d``, then
every health moved by a factor between ``r_lo / r_d`` and ``r_hi / r_d``.  So if the lowest
health at or above the level, times ``r_lo / r_d``, still clears the level, and the highest
health below it, times ``r_hi / r_d``, still falls short of it, both with a margin far
above floating-point rounding (``MARGIN``), an exact evaluation would find exactly the same
positions below the level.  The caller then skips the O(positions) pass: in steps where
prices drift and nobody crosses a threshold (most steps of a run) it costs a handful of
scalar operations.  Results are unchanged: the skipped evaluation could only have found
the same set.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from cascadelab.book import PositionBook

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MARGIN = 1e-9
"""Relative clearance the bounds must have from the level (rounding of both evaluations is ~1e-15)."""


class HealthBand:
    """Which positions of a fixed group (of the given protocols) are below ``level``, proved unchanged at new prices."""

    def __init__(self, book: PositionBook, protocols: Iterable[int], level: float) -> None:
        self.book = book
        self.level = level
        # per protocol: the price columns health depends on (collateral assets with LT > 0) and the debt column
        self._terms = [(int(q), [int(a) for a in np.flatnonzero(book.lt[q] > 0)], int(book.debt_asset[q]))
                       for q in sorted(set(protocols))]
        self._usd = book.n_assets
        protocols = [q for q, _, _ in self._terms]
        # the group's protocols' book versions (``book.protocol_version``), read in one call
        self._versions_of = operator.itemgetter(*protocols) if protocols else lambda versions: ()
        self._versions: object = None  # those versions at the last valid evaluation (None: no valid one)
        self._lowest_above = math.inf  # lowest health >= level at the evaluation
        self._highest_below = -math.inf  # highest health < level
        self._px0: dict[tuple[int, int], float] = {}
        self.below: BoolArray = np.zeros(0, dtype=bool)
        """health < level at the last evaluation (``reset``), aligned with the group's positions."""
        self.below_idx: IntArray = np.zeros(0, dtype=np.int64)
        """The same as indices."""

    @property
    def anyone_below(self) -> bool:
        return self._highest_below > -math.inf

    def reset(self, health: FloatArray, oracle_px: FloatArray) -> IntArray:
        """Remember an exact evaluation (``health`` of the group at ``oracle_px`` (P, A+1), book as it is now).

        Returns the group's positions below the level (indices into ``health``); ``below`` is
        the same as a mask.  ``health`` is briefly written to (the entries below the level are
        set aside for the minimum of the others) and restored before returning.
        """
        below = health < self.level
        idx = np.flatnonzero(below)
        self.below, self.below_idx = below, idx
        px0 = {(q, c): float(oracle_px[q, c]) for q, cols, d in self._terms for c in (*cols, d)}
        if idx.size:
            kept = health[idx]
            highest = float(kept.max())
            health[idx] = math.inf
            lowest = float(health.min(initial=math.inf))  # NaN is not below the level: it voids the proof
            health[idx] = kept
        else:
            highest, lowest = -math.inf, float(health.min(initial=math.inf))
        if math.isnan(lowest) or not all(0.0 < v < math.inf for v in px0.values()):
            self._versions = None
            return idx
        self._px0 = px0
        self._lowest_above, self._highest_below = lowest, highest
        self._versions = self._versions_of(self.book.protocol_version)
        return idx

    def unchanged(self, oracle_px: FloatArray) -> bool:
        """True if the positions below the level at ``oracle_px`` are provably those of the last evaluation."""
        if self._versions != self._versions_of(self.book.protocol_version):  # a position of its protocols changed
            return False
        lowest, highest = self._lowest_above, self._highest_below
        if lowest == math.inf and highest == -math.inf:
            return True  # nobody owes anything
        px0 = self._px0
        floor, ceiling = self.level * (1.0 + MARGIN), self.level * (1.0 - MARGIN)
        for q, cols, d in self._terms:
            if not cols:
                return False  # no collateral counts: health is 0 wherever there is debt
            row = oracle_px[q]
            if d == self._usd:
                rise = 1.0
            else:
                rise = float(row[d]) / px0[q, d]
                if not 0.0 < rise < math.inf:
                    return False
            for c in cols:
                r = float(row[c]) / px0[q, c] / rise
                if not (lowest * r >= floor and highest * r <= ceiling):  # False for NaN too
                    return False
        return True
