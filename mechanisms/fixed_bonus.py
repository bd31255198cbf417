"""Fixed-bonus liquidation with a close factor: Aave v3.3 (default) and Compound v2 (preset).

A keeper repays part of a liquidatable position's debt and receives collateral worth
``(1 + bonus)`` times the debt repaid at the oracle price, taken pro rata across assets by
value.  Of that collateral the protocol keeps a fee; the keeper receives the rest.

Aave v3.3 rules (``preset = "aave_v3"``, the default; mechanisms.md 1.2-1.5,
aave-dao/aave-v3-origin src/contracts/protocol/libraries/logic/LiquidationLogic.sol@v3.3.0):

- close factor: at most ``close_factor`` (50%) of the debt per step, but 100% when
  health <= ``full_close_health`` (0.95; ``closeFactor = HF > 0.95 ? 50% : 100%``) or when the
  position's collateral or debt is worth less than ``dust_usd`` ($2,000,
  MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD);
- leftover rule: a liquidation that takes neither all the debt nor all the collateral must
  leave at least ``min_leftover_usd`` ($1,000, MIN_LEFTOVER_BASE) of both, else it reverts
  ("MustNotLeaveDust").  The legal amounts are [0, cap] plus the full amount; a bid inside the
  gap is cut to the largest legal partial amount (the keeper resubmits what the contract
  accepts);
- protocol fee: ``protocol_fee`` (10%) of the *bonus* collateral, ``bonus/(1+bonus)`` of
  what is seized, goes to the treasury (``liquidationProtocolFee``; Fills.to_protocol);
- bad debt: debt left on a position without collateral is written off (v3.3 deficit).

With ``dust_usd = 0`` and ``min_leftover_usd = 0`` this is Aave v3.0-v3.2.

Compound v2 (``preset = "compound_v2"``; mechanisms.md 2.1, compound-finance/compound-protocol
contracts/Comptroller.sol@a3214f6): liquidationIncentive 1.08 (bonus 0.08), closeFactor 0.5
at any health (no 0.95 switch, no dust rules), and ``protocolSeizeShareMantissa`` = 2.8% of
the *seized* collateral to reserves (``fee_base = "seized"``).

Below a collateral ratio of 1 + bonus every liquidation lowers the ratio further (the toxic
spiral, Warmuz et al. 2022) and the position ends with bad debt D (1 - CR/(1 + bonus)).
Multi-collateral positions are seized pro rata by value rather than one chosen asset at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cascadelab.schema import param
from mechanisms.allocation import REL, effective_pay
from mechanisms.base import Bids, Fills, FloatArray, MechanismBase, Offers
from mechanisms.settlement import fill_in_order, write_off_empty
from mechanisms.valuation import valuation

if TYPE_CHECKING:
    from cascadelab.book import PositionBook

@dataclass(frozen=True)
class FixedBonusConfig:
    """Parameters of a fixed-bonus liquidation (defaults: Aave v3.3, WETH-like bonus)."""

    kind_id: ClassVar[str] = "fixed_bonus"
    PRESET_KEY: ClassVar[str] = "preset"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "aave_v3": {},
        "compound_v2": {"bonus": 0.08, "close_factor": 0.5, "full_close_health": 0.0, "dust_usd": 0.0,
                        "min_leftover_usd": 0.0, "protocol_fee": 0.028, "fee_base": "seized"},
        # the literature's rule (Warmuz et al. 2022, Qin et al. 2021): a fixed close factor at any
        # health, no dust rules, no protocol fee; closed forms (validation, exact tests) use it
        "textbook": {"full_close_health": 0.0, "dust_usd": 0.0, "min_leftover_usd": 0.0, "protocol_fee": 0.0},
    }

    preset: str = param("aave_v3", choices=("aave_v3", "compound_v2", "textbook"),
                        doc="parameter set filling the keys not given: aave_v3 (v3.3), compound_v2 "
                            "(bonus 0.08, no 0.95 switch or dust rules, 2.8% of seized to reserves) or "
                            "textbook (fixed close factor at any health, no dust rules, no fee)")
    bonus: float = param(0.05, lo=0.0, hi=1.0, hi_open=True,
                         doc="liquidation bonus: collateral value paid per unit of debt repaid is 1 + bonus")
    close_factor: float = param(0.5, lo=0.0, hi=1.0, lo_open=True,
                                doc="max share of the position's debt repayable per step")
    full_close_health: float = param(0.95, lo=0.0, hi=1.0,
                                     doc="at or below this health the close factor is 100% (Aave "
                                         "CLOSE_FACTOR_HF_THRESHOLD; 0 disables)")
    dust_usd: float = param(2000.0, lo=0.0,
                            doc="collateral or debt worth less than this: close factor 100% (Aave v3.3 "
                                "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD; 0 disables)")
    min_leftover_usd: float = param(1000.0, lo=0.0,
                                    doc="a partial liquidation must leave at least this much debt and "
                                        "collateral (Aave v3.3 MIN_LEFTOVER_BASE; 0 disables)")
    protocol_fee: float = param(0.10, lo=0.0, hi=1.0, hi_open=True,
                                doc="share of the bonus (or of all seized collateral, see fee_base) kept "
                                    "by the protocol (Aave liquidationProtocolFee)")
    fee_base: str = param("bonus", choices=("bonus", "seized"),
                          doc="protocol_fee is a share of the bonus collateral (Aave) or of all seized "
                              "collateral (Compound v2 protocolSeizeShare)")

    @property
    def seized_share_to_protocol(self) -> float:
        """Fraction of the seized collateral the protocol keeps."""
        if self.fee_base == "bonus":
            return self.protocol_fee * self.bonus / (1.0 + self.bonus)
        return self.protocol_fee


class FixedBonus(MechanismBase):
    """Fixed bonus, close factor (Aave v3.3 / Compound v2); collateral taken pro rata across assets by value."""

    name: ClassVar[str] = "fixed_bonus"
    Config: ClassVar[type] = FixedBonusConfig
    source: ClassVar[str] = ("Aave v3.3 LiquidationLogic.sol (aave-dao/aave-v3-origin@v3.3.0); Compound v2 "
                             "Comptroller.sol@a3214f6 (mechanisms.md 1.2-1.5, 2.1)")
    QUIET_WITHOUT_LIQUIDATABLE: ClassVar[bool] = True

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> Offers:
        if self.same_offer_inputs(book, oracle_px):
            return self._offers  # nothing they depend on changed since they were built
        cfg = self.config
        pos, since = self.indebted_liquidatable(book)
        v = valuation(book, pos, oracle_px, self.protocol)
        value_per_pay = (1.0 + cfg.bonus) * v.p_debt
        all_collateral = v.value / value_per_pay  # the payment that takes every unit of collateral
        dust = (v.value < cfg.dust_usd) | (v.debt_value < cfg.dust_usd)
        full_close = (v.health <= cfg.full_close_health) | dust
        max_pay = np.minimum(np.where(full_close, 1.0, cfg.close_factor) * v.debt, all_collateral)
        cap = np.full(pos.shape, np.inf)  # largest legal partial payment when the full amount is also legal
        if cfg.min_leftover_usd > 0:
            left = cfg.min_leftover_usd
            partial_cap = np.maximum(np.minimum(v.debt - left / v.p_debt, (v.value - left) / value_per_pay), 0.0)
            takes_all = max_pay >= np.minimum(v.debt, all_collateral) * (1.0 - REL)
            max_pay = np.where(takes_all, max_pay, np.minimum(max_pay, partial_cap))
            cap = np.where(takes_all, partial_cap, np.inf)
        ok = max_pay > 0
        pos, since, max_pay, cap = pos[ok], since[ok], max_pay[ok], cap[ok]
        self._cap = cap
        share = cfg.seized_share_to_protocol
        self._offers = Offers(
            position=pos,
            max_pay=max_pay,
            receive_per_pay=self.pro_rata_receive(book, pos, oracle_px, np.full(pos.shape, value_per_pay * (1 - share))),
            repay_per_pay=np.ones(pos.shape),
            min_pay=np.zeros(pos.shape),
            since=since,
        )
        return self._offers

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills:
        if bids.size == 0:
            return Fills.empty(self.n_assets)
        if np.isfinite(self._cap).any():  # Aave's leftover rule: cut bids that would leave dust
            bids = replace(bids, pay=effective_pay(self._offers, bids, self._cap))
        fills = fill_in_order(book, self._offers, bids)
        return with_protocol_share(book, fills, self.config.seized_share_to_protocol)

    def end_step(self, book: PositionBook, t: int) -> Fills:
        return write_off_empty(book, self.protocol)


def with_protocol_share(book: PositionBook, fills: Fills, share: float) -> Fills:
    """Fills whose taker receives what it was offered, plus the protocol's ``share`` of the total seized.

    ``fills`` hand the taker ``seized`` (no fee yet); the position gives up
    ``received / (1 - share)`` and the protocol keeps the difference.
    """
    if share <= 0 or fills.size == 0:
        return fills
    received = fills.seized
    seized = np.minimum(received / (1.0 - share), book.collateral[fills.position])
    return replace(fills, seized=seized, to_protocol=np.maximum(seized - received, 0.0))
