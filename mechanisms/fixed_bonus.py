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

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cascadelab.schema import param
from mechanisms.allocation import REL, effective_pay
from mechanisms.base import (
    Bids,
    BoolArray,
    Fills,
    FloatArray,
    IntArray,
    MechanismBase,
    OfferCeiling,
    Offers,
    pro_rata_rows,
)
from mechanisms.settlement import fill_in_order, write_off_empty
from mechanisms.valuation import Valuation, valuation

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
    _basis: _CeilingBasis | None = None  # what bounds the offers at new prices (offer_ceiling)
    _built: tuple[_Terms, BoolArray] | None = None  # the last build's terms, for the basis when first asked
    _covered_for: tuple[int, IntArray] | None = None  # (protocol's book version, liquidatable array) the basis was found to cover

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> Offers:
        if self.same_offer_inputs(book, oracle_px):
            return self._offers  # nothing they depend on changed since they were built
        self._basis = self._built = self._covered_for = None  # the last build's arrays are freed before this one's
        pos, since = self.indebted_liquidatable(book)
        terms = self._terms(book, pos, oracle_px)
        ok = terms.max_pay > 0
        self._cap = terms.cap[ok]
        offered = pos[ok]
        self._offers = Offers(
            position=offered,
            max_pay=terms.max_pay[ok],
            receive_per_pay=self.pro_rata_receive(book, offered, oracle_px, np.full(offered.shape, terms.receive_value)),
            repay_per_pay=np.ones(offered.shape),
            min_pay=np.zeros(offered.shape),
            since=since[ok],
        )
        self._built = (terms, ok)  # the basis is made from these if offer_ceiling asks
        return self._offers

    def _terms(self, book: PositionBook, pos: IntArray, oracle_px: FloatArray) -> _Terms:
        """The liquidation terms of positions ``pos`` at ``oracle_px`` (Aave v3.3 / Compound v2 rules)."""
        cfg = self.config
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
        return _Terms(pos, book.collateral[pos], int(book.debt_asset[self.protocol]), oracle_px, v,
                      full_close, all_collateral, max_pay, cap, value_per_pay * (1 - cfg.seized_share_to_protocol))

    def offer_ceiling(self, book: PositionBook, oracle_px: FloatArray) -> OfferCeiling | None:
        """Bounds on the offers at ``oracle_px`` from the basis kept when the offers were last built.

        Every indebted liquidatable position must be in the basis with the row of the book (debt
        and collateral) it had then: positions that left the set since leave harmless extra rows.
        None when a new position joined, a row changed, or a threshold may have been crossed
        (:class:`_CeilingBasis`): the offers are then rebuilt.
        """
        basis = self._basis
        covering = basis.positions.size if basis is not None else -1 if self._built is None else self._built[0].pos.size
        if self.liquidatable.size > covering:
            return None  # new positions (or nothing built): found without looking at any row
        if basis is None:
            (terms, ok), self._built = self._built, None
            basis = self._basis = terms.basis(self.config, ok, self._offers.receive_per_pay)
            if basis is None:
                return None
        version = book.protocol_version[self.protocol]
        if self._covered_for is None or self._covered_for[0] != version \
                or self._covered_for[1] is not self.liquidatable:  # else: checked with these rows and set already
            indebted = self.liquidatable[book.debt[self.liquidatable] > 0]
            if not basis.holds_current(book, indebted).all():
                return None
            self._covered_for = (version, self.liquidatable)
        return basis.ceiling(oracle_px)

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills:
        if bids.size == 0:
            return Fills.empty(self.n_assets)
        if np.isfinite(self._cap).any():  # Aave's leftover rule: cut bids that would leave dust
            bids = replace(bids, pay=effective_pay(self._offers, bids, self._cap))
        fills = fill_in_order(book, self._offers, bids)
        return with_protocol_share(book, fills, self.config.seized_share_to_protocol)

    def end_step(self, book: PositionBook, t: int) -> Fills:
        return write_off_empty(book, self.protocol)


@dataclass(slots=True)
class _Terms:
    """Liquidation terms of some positions at one oracle row (before those without a payment are dropped),
    with the positions' rows of the book then: enough to build their :class:`_CeilingBasis` later, if asked."""

    pos: IntArray
    collateral: FloatArray  # the positions' rows of the book at the build (their debt: v.debt)
    debt_asset: int
    px: FloatArray
    v: Valuation
    full_close: BoolArray
    all_collateral: FloatArray
    max_pay: FloatArray
    cap: FloatArray
    receive_value: float  # collateral value handed over per debt unit paid, less the protocol's share

    def basis(self, cfg: FixedBonusConfig, ok: BoolArray, offered: FloatArray) -> _CeilingBasis | None:
        """The ceiling basis of all these positions; ``offered``: receive_per_pay of the rows in ``ok``, computed."""
        receive = offered
        if not ok.all():  # rows without a payment now (leftover rule) may get one once prices move
            receive = np.zeros(self.collateral.shape)
            receive[ok] = offered
            receive[~ok] = pro_rata_rows(self.collateral[~ok], self.px, np.full(int((~ok).sum()), self.receive_value))
        return _CeilingBasis.of(cfg, self, receive)


@dataclass(frozen=True)
class _CeilingBasis:
    """What bounds the fixed-bonus offers of some positions at new oracle prices, kept from a build at ``px0``.

    Between the build and now each collateral price moved by a factor rho_b and the debt price
    by rho_d, and the positions' rows of the book (debt, collateral) did not change.  Then:

    - the payment is ``factor * D`` capped by the payment that takes all the collateral (value /
      ((1 + bonus) P_d), which moves by at most max rho_b / rho_d) and by Aave's leftover rule
      (which only lowers it), so ``max_pay <= min(factor * D, all_collateral * max rho_b / rho_d)``
      with ``factor`` as at the build, unless a position below 100% switches to full close: its
      health (a sum of collateral terms over D P_d) fell to ``full_close_health`` or its
      collateral or debt value below ``dust_usd``.  Health moves by at least min rho_b / rho_d,
      collateral value by min rho_b, debt value by rho_d; the lowest of each at the build,
      moved so, must stay clear of its threshold, else there is no ceiling;
    - collateral per unit paid, ``(1 + bonus) P_d C_a / sum_b C_b P_b`` (less the protocol's
      share), grows by at most rho_d / min rho_b.
    """

    positions: IntArray  # sorted
    debt: FloatArray  # their rows at the build
    collateral: FloatArray
    max_pay: FloatArray  # factor * D at the build: the largest max_pay while no position switches to full close
    all_collateral: FloatArray  # the payment that takes all the collateral, at the build
    receive_per_pay: FloatArray  # (k, A) at the build
    px0: FloatArray  # (A + 1,) oracle row at the build
    debt_asset: int
    full_close_health: float
    dust_usd: float
    lowest_health: float  # over positions below 100% close (inf if none): must stay above full_close_health
    lowest_value: float  # ... must stay at or above dust_usd (as must lowest_debt_value)
    lowest_debt_value: float

    @classmethod
    def of(cls, cfg: FixedBonusConfig, terms: _Terms, receive_per_pay: FloatArray) -> _CeilingBasis | None:
        """The basis of a build, or None if a price it would divide by is not positive and finite."""
        n, px0, debt_asset = receive_per_pay.shape[1], np.array(terms.px, dtype=np.float64), terms.debt_asset
        if not (np.all((px0[:n] > 0) & (px0[:n] < math.inf)) and 0.0 < px0[debt_asset] < math.inf):
            return None
        v, full_close = terms.v, terms.full_close
        partial = ~full_close & (cfg.close_factor < 1.0)  # positions that could still switch to 100%
        if partial.any():
            lowest = (float(v.health[partial].min()), float(v.value[partial].min()),
                      float(v.debt_value[partial].min()))
        else:
            lowest = (math.inf, math.inf, math.inf)
        return cls(terms.pos, v.debt, terms.collateral, np.where(full_close, 1.0, cfg.close_factor) * v.debt,
                   terms.all_collateral, receive_per_pay, px0, debt_asset, cfg.full_close_health, cfg.dust_usd,
                   *lowest)

    def holds_current(self, book: PositionBook, positions: IntArray) -> BoolArray:
        """Which of ``positions`` (sorted) this basis holds with the row the book has now."""
        at = np.minimum(np.searchsorted(self.positions, positions), self.positions.size - 1)
        held = self.positions[at] == positions
        held &= book.debt[positions] == self.debt[at]
        held &= (book.collateral[positions] == self.collateral[at]).all(axis=1)
        return held

    def ceiling(self, px: FloatArray) -> OfferCeiling | None:
        n = self.receive_per_pay.shape[1]
        if n == 1:  # one collateral asset: the same division without the array reductions
            lo = hi = float(px[0]) / float(self.px0[0])
        else:
            rho = px[:n] / self.px0[:n]  # px0 > 0 (checked by ``of``)
            lo, hi = float(rho.min()), float(rho.max())
        rho_d = float(px[self.debt_asset]) / float(self.px0[self.debt_asset])
        if not (lo > 0.0 and hi < math.inf and 0.0 < rho_d < math.inf):
            return None  # NaN fails too
        guard = 1.0 - 1e-9  # the thresholds must be cleared by far more than rounding
        if self.lowest_health < math.inf and not (
                self.lowest_health * (lo / rho_d) * guard > self.full_close_health
                and self.lowest_value * lo * guard >= self.dust_usd
                and self.lowest_debt_value * rho_d * guard >= self.dust_usd):
            return None
        return OfferCeiling(self, self.max_pay, self.all_collateral, hi / rho_d, self.receive_per_pay, rho_d / lo)


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
