"""Partial liquidation to a target health, with a fixed or health-scaled incentive (Euler v1, Morpho Blue).

A keeper may repay only the debt that brings the position back to ``target_health``.  With
value-weighted liquidation threshold LT = W/V (unchanged by a pro-rata seizure), debt D at
price P_d, and incentive 1 + i (collateral value handed over per unit of debt repaid),
repaying r gives health

    H(r) = (V - r (1 + i) P_d) LT / ((D - r) P_d).

Setting H(r) = target and solving for r:

    target (D - r) P_d = (V - r (1 + i) P_d) LT
    r = (target D P_d - V LT) / (P_d (target - LT (1 + i))) = (target D P_d - W) / (P_d (target - LT (1 + i))).

When target <= LT (1 + i) no repayment reaches the target (each one lowers health at least as
fast as it removes debt) and the whole debt may be repaid; either way the repayment is
capped by the debt and by the collateral (r (1 + i) P_d <= V).  This is Euler v1's maxRepay
with collateral factor LT and borrow factor 1 (mechanisms.md 5.1).

Incentives (``incentive``):

- ``fixed``: 1 + i = 1 + ``bonus``;
- ``euler``: discount d = min(base * booster, base + max_booster_discount, max_discount) with
  base = ``base_discount`` + (1 - HS) (0.02 + (1 - HS); mechanisms.md 5.1,
  euler-xyz/euler-contracts contracts/modules/Liquidation.sol@002be59d); 1 + i = 1/(1 - d).  The
  keeper also pays ``reserves_fee`` (2%) on top of the debt it repays, kept by the protocol
  (Fills.paid > Fills.repaid).  ``booster`` (1..2) stands for the liquidator's liquidity booster;
  the default 1 means no boost;
- ``morpho``: LIF = min(``max_lif``, 1/(``cursor`` LLTV + 1 - ``cursor``)) with LLTV the position's
  LT (mechanisms.md 5.3, morpho-org/morpho-blue src/Morpho.sol, src/libraries/ConstantsLib.sol);
  Morpho has no target (``target_health = inf`` repays up to 100%).

``cap_at_collateral_ratio`` applies the dynamic-incentive rule of Warmuz, Chaudhary & Pinna,
"Toxic Liquidation Spirals" (arXiv:2212.07306): 1 + i <= max(CR, 1) with CR = V/(D P_d), so
no liquidation lowers the collateral ratio.  Without it, a position gapped below
CR = 1 + i still ends with bad debt D (1 - CR/(1 + i)), and Euler's discount, which *grows*
as health falls, makes that worse after a gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from cascadelab.schema import param
from mechanisms.base import Bids, Fills, FloatArray, MechanismBase, Offers
from mechanisms.settlement import fill_in_order, write_off_empty
from mechanisms.valuation import Valuation, valuation

if TYPE_CHECKING:
    from cascadelab.book import PositionBook


@dataclass(frozen=True)
class PartialConfig:
    """Parameters of partial liquidation to a target health (defaults: Euler v1)."""

    kind_id: ClassVar[str] = "partial"
    incentive: str = param("euler", choices=("fixed", "euler", "morpho"),
                           doc="fixed bonus, Euler v1 health-scaled discount, or Morpho Blue LLTV-scaled LIF")
    target_health: float = param(1.25, lo=1.0, lo_open=True,
                                 doc="repay only what restores this health (Euler v1 TARGET_HEALTH; inf: up to 100%)")
    bonus: float = param(0.05, lo=0.0, hi=1.0, hi_open=True, doc="incentive='fixed': liquidation bonus")
    base_discount: float = param(0.02, lo=0.0, hi=1.0, hi_open=True,
                                 doc="euler: discount at HS = 1 (0.02, matching UNDERLYING_RESERVES_FEE)")
    max_discount: float = param(0.20, lo=0.0, hi=1.0, hi_open=True, doc="euler: MAXIMUM_DISCOUNT")
    booster: float = param(1.0, lo=1.0, hi=2.0, doc="euler: liquidity booster multiplier (1 = none, 2 = full)")
    max_booster_discount: float = param(0.025, lo=0.0, hi=1.0, doc="euler: MAXIMUM_BOOSTER_DISCOUNT")
    reserves_fee: float = param(0.02, lo=0.0, hi=1.0,
                                doc="euler: the keeper pays repay * (1 + fee), the fee kept by the protocol")
    cursor: float = param(0.3, lo=0.0, hi=1.0, doc="morpho: LIQUIDATION_CURSOR beta")
    max_lif: float = param(1.15, lo=1.0, doc="morpho: MAX_LIQUIDATION_INCENTIVE_FACTOR")
    cap_at_collateral_ratio: bool = param(False, doc="cap 1 + incentive at the collateral ratio so no liquidation "
                                                     "lowers it (Warmuz et al. 2022 dynamic incentive)")


def incentive_factor(cfg: PartialConfig, v: Valuation) -> FloatArray:
    """1 + i per position: collateral value handed over per unit of debt value repaid."""
    if cfg.incentive == "fixed":
        factor = np.full(v.debt.shape, 1.0 + cfg.bonus)
    elif cfg.incentive == "euler":
        base = cfg.base_discount + (1.0 - np.minimum(v.health, 1.0))
        discount = np.minimum.reduce([base * cfg.booster, base + cfg.max_booster_discount,
                                      np.full(base.shape, cfg.max_discount)])
        factor = 1.0 / (1.0 - discount)
    else:
        factor = np.minimum(cfg.max_lif, 1.0 / (cfg.cursor * v.avg_lt + 1.0 - cfg.cursor))
    if cfg.cap_at_collateral_ratio:
        factor = np.minimum(factor, np.maximum(v.collateral_ratio, 1.0))
    return factor


def repay_to_target(v: Valuation, factor: FloatArray, target: float) -> FloatArray:
    """Debt units r with H(r) = target (closed form in the module docstring); inf if unreachable."""
    denom = target - v.avg_lt * factor
    if math.isinf(target):
        return np.full(v.debt.shape, np.inf)
    num = target * v.debt_value - v.weighted
    out = np.full(v.debt.shape, np.inf)
    np.divide(num, v.p_debt * denom, out=out, where=denom > 0)
    return np.maximum(out, 0.0)


class Partial(MechanismBase):
    """Partial liquidation to a target health; incentive fixed, Euler v1 (health-scaled) or Morpho Blue (LLTV-scaled)."""

    name: ClassVar[str] = "partial"
    Config: ClassVar[type] = PartialConfig
    source: ClassVar[str] = ("Euler v1 Liquidation.sol@002be59d; Morpho Blue Morpho.sol/ConstantsLib.sol; "
                             "Warmuz et al. 2022 (mechanisms.md 5.1, 5.3)")
    QUIET_WITHOUT_LIQUIDATABLE: ClassVar[bool] = True

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> Offers:
        if self.same_offer_inputs(book, oracle_px):
            return self._offers  # nothing they depend on changed since they were built
        cfg = self.config
        pos, since = self.indebted_liquidatable(book)
        v = valuation(book, pos, oracle_px, self.protocol)
        factor = incentive_factor(cfg, v)
        repay = np.minimum.reduce([repay_to_target(v, factor, cfg.target_health), v.debt,
                                   v.value / (factor * v.p_debt)])
        fee = cfg.reserves_fee if cfg.incentive == "euler" else 0.0
        ok = repay > 0
        pos, since, repay, factor = pos[ok], since[ok], repay[ok], factor[ok]
        repay_per_pay = 1.0 / (1.0 + fee)
        self._offers = Offers(
            position=pos,
            max_pay=repay * (1.0 + fee),
            receive_per_pay=self.pro_rata_receive(book, pos, oracle_px, factor * v.p_debt * repay_per_pay),
            repay_per_pay=np.full(pos.shape, repay_per_pay),
            min_pay=np.zeros(pos.shape),
            since=since,
        )
        return self._offers

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills:
        return fill_in_order(book, self._offers, bids)

    def end_step(self, book: PositionBook, t: int) -> Fills:
        return write_off_empty(book, self.protocol)
