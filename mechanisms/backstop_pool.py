"""Backstop pools: Liquity's Stability Pool with redistribution, and Compound v3's absorb + storefront.

No keeper capital is needed to liquidate: at the end of each step (``end_step``) every
position that was liquidatable this step is taken over by the backstop.

``variant = "liquity"`` (mechanisms.md 4; liquity/dev packages/contracts/contracts/
TroveManager.sol, StabilityPool.sol@39f1f7f8), normal mode, positions in ascending
collateral-ratio order:

    collGasComp  = coll * caller_comp            (0.5%, PERCENT_DIVISOR 200) to the caller
    debtToOffset = min(debt, pool deposits left)  repaid by the pool (deposits burned pro rata)
    collToSP     = (coll - collGasComp) * debtToOffset / debt   to the depositors, pro rata to deposits
    debtRedist   = debt - debtToOffset ;  collRedist = rest of the collateral
    redistribution: every other open position of the protocol takes on debtRedist and
    collRedist pro rata to its collateral value (Liquity's stakes), fills with taker
    REDISTRIBUTION (negative repaid/seized on receivers, positive on the liquidated one).

The caller's compensation is booked as ``to_protocol``: it leaves with a caller outside the
keeper population.  The 200 LUSD gas reserve is the trove's own money and changes nothing
here.  Recovery Mode and MIN_LUSD_IN_SP are not modelled.  If nobody is left to take a
redistribution (Liquity cannot liquidate the last trove) the unoffset part stays on the position.

``variant = "comet"`` (mechanisms.md 2.2; compound-finance/comet contracts/Comet.sol@d5a30b0a,
cUSDCv3 launch configuration):

    absorb: all collateral into protocol custody; the debt is cleared; the borrower is credited
            max(0, V * liquidationFactor - D P_d) (Fills.paid - Fills.repaid on the PROTOCOL row);
            debt the collateral's oracle value cannot cover, max(0, D - V/P_d), is written off;
            reserves fall by D P_d + credit.
    buyCollateral (the storefront, ``sell = "storefront"``), only while reserves < targetReserves:
            discount = storeFrontPriceFactor * (1 - liquidationFactor) (0.5 * 0.05 = 2.5%);
            a keeper paying x debt units gets x P_d / (P_a (1 - discount)) units of asset a;
            reserves rise by x P_d.

Storefront fills hand custody collateral to keepers: seized 0, ``to_protocol`` negative (the
protocol gives up collateral it holds), attributed to the position absorbed last with the
most of that asset.  What the backstop does with collateral it holds is a parameter because
it decides market impact: ``hold``, ``twap`` (sell ``sell_fraction`` of it per step on the
venue, done by the backstop agent in agents/backstop.py; proceeds go back to the pool's
deposits or Comet's reserves) or ``storefront`` (Comet only).  Depositors (Liquity) are
agents that may withdraw under stress (agents/backstop.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cascadelab.schema import SpecError, param
from mechanisms.allocation import effective_pay
from mechanisms.base import (
    POOL,
    PROTOCOL,
    REDISTRIBUTION,
    Bids,
    Fills,
    FloatArray,
    IntArray,
    MechanismBase,
    Offers,
)
from mechanisms.valuation import valuation

if TYPE_CHECKING:
    from cascadelab.book import PositionBook


@dataclass(frozen=True)
class BackstopPoolConfig:
    """Parameters of a backstop pool (defaults: Liquity v1; variant comet: cUSDCv3 launch values)."""

    kind_id: ClassVar[str] = "backstop_pool"
    PRESET_KEY: ClassVar[str] = "variant"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"liquity": {}, "comet": {"sell": "storefront"}}

    variant: str = param("liquity", choices=("liquity", "comet"),
                         doc="Liquity Stability Pool + redistribution, or Compound v3 absorb + buyCollateral")
    deposit_share: float = param(0.5, lo=0.0,
                                 doc="liquity: pool deposits at the start as a share of the protocol's initial "
                                     "debt [UNV: the SP held $1.1B in Apr 2021, a large share of LUSD]")
    depositors: int = param(20, lo=1, hi=100_000, doc="liquity: depositor agents sharing the pool equally")
    caller_comp: float = param(0.005, lo=0.0, hi=0.5, doc="liquity: collateral share paid to the caller "
                                                          "(1/PERCENT_DIVISOR = 0.5%)")
    withdraw_drop: float = param(0.2, lo=0.0, hi=1.0,
                                 doc="liquity: depositors are stressed once the collateral oracle price is this far "
                                     "below its start [assumption]")
    withdraw_prob: float = param(0.0, lo=0.0, hi=1.0,
                                 doc="liquity: chance per step that a stressed depositor withdraws everything "
                                     "[assumption; 0: depositors stay, as the protocol assumes]")
    liquidation_factor: float = param(0.95, lo=0.0, hi=1.0,
                                      doc="comet: borrower credited V * factor on absorb (WETH 0.95)")
    store_front_price_factor: float = param(0.5, lo=0.0, hi=1.0,
                                            doc="comet: share of the penalty given to storefront buyers")
    target_reserves_usd: float = param(5_000_000.0, lo=0.0, doc="comet: storefront sells only below this")
    initial_reserves_usd: float = param(0.0, doc="comet: reserves at the start")
    sell: str = param("hold", choices=("hold", "twap", "storefront"),
                      doc="what the backstop does with collateral it holds: hold, sell a share per step on the "
                          "venue (twap), or sell to keepers at the storefront discount (comet)")
    sell_fraction: float = param(0.05, lo=0.0, hi=1.0, lo_open=True,
                                 doc="twap: share of the held collateral sold per step [assumption]")

    def check(self, path: str) -> None:
        if self.sell == "storefront" and self.variant != "comet":
            raise SpecError(f"{path}.sell", "'storefront' is Compound v3's buyCollateral; use variant = \"comet\"")

    @property
    def storefront_discount(self) -> float:
        """storeFrontPriceFactor * (1 - liquidationFactor)."""
        return self.store_front_price_factor * (1.0 - self.liquidation_factor)


@dataclass
class Custody:
    """Collateral a backstop received, holds, sold and let go, per asset (units)."""

    received: FloatArray
    sold: FloatArray
    withdrawn: FloatArray

    def error(self, held: FloatArray) -> float:
        """Largest relative mismatch of received == held + sold + withdrawn."""
        gap = np.abs(self.received - held - self.sold - self.withdrawn)
        return float(np.max(gap / np.maximum(self.received, 1.0), initial=0.0))


@dataclass
class StabilityPool:
    """Liquity's Stability Pool: deposits (debt-asset units) and collateral gains per depositor."""

    deposits: FloatArray  # (n,)
    gains: FloatArray  # (n, A)
    custody: Custody
    offset_debt: float = 0.0
    withdrawn_deposits: float = 0.0

    @property
    def held(self) -> FloatArray:
        return self.gains.sum(axis=0)

    @property
    def balance(self) -> float:
        return float(self.deposits.sum())

    def offset(self, debt: float, collateral: FloatArray) -> None:
        """Burn ``debt`` from the deposits and hand ``collateral`` to the depositors, both pro rata to deposits."""
        total = self.balance
        if total <= 0:
            return
        share = self.deposits / total
        self.deposits = np.maximum(self.deposits - debt * share, 0.0)
        self.gains += share[:, None] * collateral[None, :]
        self.custody.received += collateral
        self.offset_debt += debt

    def withdraw(self, j: int) -> None:
        """Depositor j leaves with its deposit and its collateral gains."""
        self.withdrawn_deposits += float(self.deposits[j])
        self.custody.withdrawn += self.gains[j]
        self.deposits[j] = 0.0
        self.gains[j] = 0.0

    def sold(self, asset: int, qty: float, proceeds_debt: float) -> None:
        """``qty`` units of ``asset`` were sold on the venue, pro rata to holdings; proceeds are re-deposited."""
        held = self.gains[:, asset].sum()
        if held <= 0:
            return
        share = self.gains[:, asset] / held
        self.gains[:, asset] -= qty * share
        self.deposits += proceeds_debt * share
        self.custody.sold[asset] += qty


@dataclass
class Reserves:
    """Compound v3's reserves (USD) and the collateral the protocol holds after absorbs."""

    reserves_usd: float
    held: FloatArray  # (A,)
    custody: Custody
    credited_usd: float = 0.0
    absorbed_debt_usd: float = 0.0
    row: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # attribution row per asset
    since: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # custody non-empty since

    @property
    def balance(self) -> float:
        return self.reserves_usd

    def sold(self, asset: int, qty: float, proceeds_usd: float) -> None:
        self.held[asset] -= qty
        self.reserves_usd += proceeds_usd
        self.custody.sold[asset] += qty


class BackstopPool(MechanismBase):
    """Backstop pool: Liquity Stability Pool offset + redistribution, or Comet absorb + storefront."""

    name: ClassVar[str] = "backstop_pool"
    Config: ClassVar[type] = BackstopPoolConfig
    source: ClassVar[str] = ("Liquity v1 TroveManager.sol/StabilityPool.sol@39f1f7f8; Compound v3 Comet.sol@d5a30b0a "
                             "(mechanisms.md 4, 2.2)")

    def __init__(self, config: Any, protocol: int, n_assets: int) -> None:
        super().__init__(config, protocol, n_assets)
        self.pool: StabilityPool | Reserves | None = None
        self._px: FloatArray | None = None
        self._offers = Offers.empty(n_assets)

    # ----------------------------------------------------------------- state

    def pool_for(self, book: PositionBook) -> StabilityPool | Reserves:
        """The pool's state, created on first use from the protocol's initial debt (deterministic)."""
        if self.pool is None:
            cfg, a = self.config, self.n_assets
            custody = Custody(np.zeros(a), np.zeros(a), np.zeros(a))
            if cfg.variant == "liquity":
                total = cfg.deposit_share * float(book.debt0[book.slices[self.protocol]].sum())
                self.pool = StabilityPool(np.full(cfg.depositors, total / cfg.depositors),
                                          np.zeros((cfg.depositors, a)), custody)
            else:
                self.pool = Reserves(cfg.initial_reserves_usd, np.zeros(a), custody,
                                     row=np.full(a, -1, dtype=np.int64), since=np.zeros(a, dtype=np.int64))
        return self.pool

    @property
    def custody(self) -> FloatArray:
        """Collateral units the backstop holds (the conformance suite checks it never goes negative)."""
        return np.zeros(self.n_assets) if self.pool is None else self.pool.held

    def ledger_error(self) -> float:
        """Custody conservation: received == held + sold + withdrawn."""
        return 0.0 if self.pool is None else self.pool.custody.error(self.pool.held)

    # ----------------------------------------------------------------- interface

    def idle(self) -> bool:
        """Without a storefront there is nothing to offer; end_step absorbs only liquidatable positions."""
        return self.config.sell != "storefront" and self.liquidatable.size == 0

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> Offers:
        """Storefront offers of protocol-held collateral (comet, sell='storefront'); nothing otherwise."""
        self._px = np.asarray(oracle_px, dtype=np.float64).copy()
        pool = self.pool_for(book)
        cfg = self.config
        self._offers = Offers.empty(self.n_assets)
        if cfg.sell != "storefront" or pool.reserves_usd >= cfg.target_reserves_usd:
            return self._offers
        assets = np.flatnonzero(pool.held > 0)
        if assets.size == 0:
            return self._offers
        p_debt = oracle_px[book.debt_asset[self.protocol]]
        price = oracle_px[assets] * (1.0 - cfg.storefront_discount)  # USD per unit at the storefront
        receive = np.zeros((assets.size, self.n_assets))
        receive[np.arange(assets.size), assets] = p_debt / price
        self._offers = Offers(
            position=pool.row[assets],
            max_pay=pool.held[assets] * price / p_debt,
            receive_per_pay=receive,
            repay_per_pay=np.zeros(assets.size),
            min_pay=np.zeros(assets.size),
            since=pool.since[assets],
        )
        return self._offers

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills:
        """Storefront purchases: keepers pay debt units, receive custody collateral (to_protocol < 0)."""
        if self._offers.size == 0 or bids.size == 0:
            return Fills.empty(self.n_assets)
        pay = effective_pay(self._offers, bids)
        ok = pay > 0
        off, pay = bids.offer[ok], pay[ok]
        pool: Reserves = self.pool  # type: ignore[assignment]
        units = np.minimum(pay[:, None] * self._offers.receive_per_pay[off], pool.held[None, :])
        pool.held -= units.sum(axis=0)
        pool.held[np.abs(pool.held) < 1e-12 * np.maximum(pool.custody.received, 1.0)] = 0.0
        pool.custody.sold += units.sum(axis=0)
        p_debt = self._px[book.debt_asset[self.protocol]]
        pool.reserves_usd += float(pay.sum() * p_debt)
        return Fills.make(self._offers.position[off], bids.taker[ok], self.n_assets, repaid=0.0, paid=pay,
                          to_protocol=-units)

    def end_step(self, book: PositionBook, t: int) -> Fills:
        """Absorb every position that was liquidatable this step (offset/redistribute, or Comet absorb)."""
        pos, _ = self.indebted_liquidatable(book)
        if pos.size == 0 or self._px is None:
            return Fills.empty(self.n_assets)
        self.pool_for(book)
        if self.config.variant == "liquity":
            return self._offset_and_redistribute(book, pos)
        return self._absorb(book, pos, t)

    # ----------------------------------------------------------------- Liquity

    def _offset_and_redistribute(self, book: PositionBook, pos: IntArray) -> Fills:
        cfg, a, px = self.config, self.n_assets, self._px
        pool: StabilityPool = self.pool  # type: ignore[assignment]
        v = valuation(book, pos, px, self.protocol)
        order = np.argsort(v.collateral_ratio, kind="stable")  # Liquity liquidates the lowest ICR first
        pos = pos[order]
        coll, debt = book.collateral[pos], book.debt[pos]
        before = np.cumsum(debt) - debt
        offset = np.clip(pool.balance - before, 0.0, debt)
        frac_pool = offset / debt
        # receivers of a redistribution: open positions not liquidated now, pro rata to collateral value
        s = book.slices[self.protocol]
        candidates = np.setdiff1d(np.flatnonzero(book.debt[s] > 0) + s.start, pos, assume_unique=True)
        weight = book.collateral[candidates] @ px[:a]
        receivers, weight = candidates[weight > 0], weight[weight > 0]
        frac_liq = np.ones(pos.size) if receivers.size else frac_pool
        frac_red = frac_liq - frac_pool
        comp = coll * (cfg.caller_comp * frac_liq)[:, None]
        net = coll * (1.0 - cfg.caller_comp)
        coll_pool = net * frac_pool[:, None]
        coll_red = net * frac_red[:, None]
        debt_red = debt * frac_red
        pool.offset(float(offset.sum()), coll_pool.sum(axis=0))
        parts = []
        liq = frac_liq > 0
        parts.append(Fills.make(pos[liq], POOL, a, repaid=offset[liq], seized=(coll_pool + comp)[liq],
                                to_protocol=comp[liq]))
        red = frac_red > 0
        if red.any():
            parts.append(Fills.make(pos[red], REDISTRIBUTION, a, repaid=debt_red[red], seized=coll_red[red]))
            share = weight / weight.sum()
            parts.append(Fills.make(receivers, REDISTRIBUTION, a, repaid=-share * debt_red.sum(),
                                    seized=-share[:, None] * coll_red.sum(axis=0)[None, :]))
        return Fills.concat(parts, a)

    # ----------------------------------------------------------------- Comet

    def _absorb(self, book: PositionBook, pos: IntArray, t: int) -> Fills:
        cfg, a, px = self.config, self.n_assets, self._px
        pool: Reserves = self.pool  # type: ignore[assignment]
        v = valuation(book, pos, px, self.protocol)
        coll, debt = book.collateral[pos], v.debt
        credit_usd = np.maximum(v.value * cfg.liquidation_factor - v.debt_value, 0.0)
        written_off = np.maximum(debt - v.value / v.p_debt, 0.0)
        repaid = debt - written_off
        pool.reserves_usd -= float(v.debt_value.sum() + credit_usd.sum())
        pool.credited_usd += float(credit_usd.sum())
        pool.absorbed_debt_usd += float(v.debt_value.sum())
        absorbed = coll.sum(axis=0)
        newly = (pool.held <= 0) & (absorbed > 0)
        pool.since[newly] = t
        has = absorbed > 0
        pool.row[has] = pos[np.argmax(coll[:, has], axis=0)]
        pool.held += absorbed
        pool.custody.received += absorbed
        return Fills.make(pos, PROTOCOL, a, repaid=repaid, paid=repaid + credit_usd / v.p_debt, seized=coll,
                          to_protocol=coll, written_off=written_off)
