"""Fixed-bonus liquidation with a close factor (Aave v3, Compound v2 style).

A keeper repays up to ``close_factor`` of a liquidatable position's debt and receives
collateral worth ``(1 + bonus)`` times the debt repaid at the oracle price.  When the
position's collateral cannot cover that, the keeper takes all of it for proportionally
less debt, and whatever debt is left on an empty position is written off as bad debt
(Aave v3.3 deficit accounting).

Source: shared/reference/mechanisms.md sections 1.2-1.5 (aave/aave-v3-core
LiquidationLogic.sol@782f5191; aave-dao/aave-v3-origin LiquidationLogic.sol@v3.3.0)
and 2.1 (compound-finance/compound-protocol Comptroller.sol@a3214f6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from cascadelab.schema import param
from mechanisms.base import Bids, Fills, FloatArray, MechanismBase, Offers
from mechanisms.settlement import fill_in_order, write_off_empty

if TYPE_CHECKING:
    from cascadelab.book import PositionBook


@dataclass(frozen=True)
class FixedBonusConfig:
    """Parameters of a fixed-bonus liquidation (defaults: Aave v3 WETH)."""

    kind_id: ClassVar[str] = "fixed_bonus"
    bonus: float = param(0.05, lo=0.0, hi=1.0, hi_open=True,
                         doc="liquidation bonus: collateral value paid per unit of debt repaid is 1 + bonus")
    close_factor: float = param(0.5, lo=0.0, hi=1.0, lo_open=True,
                                doc="max share of the position's debt repayable per step")


class FixedBonus(MechanismBase):
    """Fixed bonus, close factor; collateral taken pro rata across assets by value."""

    name: ClassVar[str] = "fixed_bonus"
    Config: ClassVar[type] = FixedBonusConfig
    source: ClassVar[str] = "Aave v3 LiquidationLogic.sol; Compound v2 Comptroller.sol (mechanisms.md 1-2)"

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> Offers:
        cfg = self.config
        keep = book.debt[self.liquidatable] > 0
        pos, since = self.liquidatable[keep], self.since[keep]
        p_debt = oracle_px[book.debt_asset[self.protocol]]
        value_per_pay = np.full(pos.shape, (1.0 + cfg.bonus) * p_debt)
        value = book.collateral[pos] @ oracle_px[: book.n_assets]
        max_pay = np.minimum(cfg.close_factor * book.debt[pos], value / value_per_pay)
        self._offers = Offers(
            position=pos,
            max_pay=max_pay,
            receive_per_pay=self.pro_rata_receive(book, pos, oracle_px, value_per_pay),
            repay_per_pay=np.ones(pos.shape),
            min_pay=np.zeros(pos.shape),
            since=since,
        )
        return self._offers

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills:
        return fill_in_order(book, self._offers, bids)

    def end_step(self, book: PositionBook, t: int) -> Fills:
        return write_off_empty(book, self.protocol)
