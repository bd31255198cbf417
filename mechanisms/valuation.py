"""What a protocol's positions are worth at one oracle price row: the inputs of every liquidation rule.

Mechanisms receive one protocol's oracle prices as a row (A + 1,) with the USD numeraire
last; these helpers turn a set of positions into collateral value V, LT-weighted value W
(so health = W / (D P_d), Aave v3 GenericLogic, mechanisms.md 1.1), debt D and its value,
vectorised over positions.  Seizing collateral pro rata by value (``MechanismBase.pro_rata_receive``)
leaves the position's average LT = W / V unchanged, which the closed forms of
``partial`` rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from mechanisms.base import FloatArray, IntArray

if TYPE_CHECKING:
    from cascadelab.book import PositionBook


@dataclass(frozen=True)
class Valuation:
    """Per-position values at one oracle price row (USD unless noted)."""

    value: FloatArray  # collateral value V
    weighted: FloatArray  # sum_a C_a P_a LT_a
    debt: FloatArray  # debt units D
    p_debt: float  # oracle price of the debt asset

    # debt value and health are read several times per build (terms, dust, the ceiling basis): made once
    # (cached_property writes the instance dict, so it works on a frozen dataclass; nobody writes the arrays)

    @cached_property
    def debt_value(self) -> FloatArray:
        return self.debt * self.p_debt

    @cached_property
    def health(self) -> FloatArray:
        """W / (D P_d); +inf without debt."""
        return self._per_debt_value(self.weighted)

    @property
    def collateral_ratio(self) -> FloatArray:
        """V / (D P_d); +inf without debt."""
        return self._per_debt_value(self.value)

    def _per_debt_value(self, x: FloatArray) -> FloatArray:
        out = np.full(self.debt.shape, np.inf)
        debt_value = self.debt_value
        with np.errstate(over="ignore"):  # dust debt: the ratio overflows to +inf, which is right
            np.divide(x, debt_value, out=out, where=debt_value > 0)
        return out

    @property
    def avg_lt(self) -> FloatArray:
        """Value-weighted liquidation threshold W / V (0 without collateral)."""
        return np.divide(self.weighted, self.value, out=np.zeros_like(self.value), where=self.value > 0)


def valuation(book: PositionBook, positions: IntArray, px: FloatArray, protocol: int) -> Valuation:
    """Value the given positions of ``protocol`` at the oracle row ``px`` (shape (A + 1,))."""
    a = book.n_assets
    coll = book.collateral[positions]
    return Valuation(
        value=coll @ px[:a],
        weighted=coll @ (book.lt[protocol] * px[:a]),
        debt=book.debt[positions],
        p_debt=float(px[book.debt_asset[protocol]]),
    )
