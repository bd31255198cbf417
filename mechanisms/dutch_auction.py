"""Dutch auction: Maker Liquidations 2.0 (Dog + Clipper, MIP45).

- **bark** (in ``offers``, before keepers act): every position whose free part is unhealthy
  is put up for auction, most underwater first, within the caps on the tab in auctions:
  ``room = min(Hole - Dirt, hole - dirt_ilk)``, ``dart = min(art, room / chop)``, ``dink =
  ink * dart / art``, ``tab = dart * chop``; what does not fit waits (a partial kick takes
  the rest later).  Here ``hole`` caps each collateral asset (the ilk of an auction is the
  asset holding most of the position's value) and ``Hole`` the whole protocol.
- **price**: ``top = buf * oracle price`` at kick (per asset, in debt units), then
  ``price = top * curve(dur)`` with the Abacus curves of :mod:`mechanisms.abacus`.
- **take** (``settle``): a keeper pays x <= min(tab, lot * price) and gets x / price of the lot
  (pro rata over assets).  Payments repay the auctioned debt first and the penalty last:
  Maker moves the debt to the Vow as ``sin`` at bark and nets it against the DAI auctions
  bring in, so the system is whole once ``due`` is paid and the rest of ``tab`` is revenue.
- **redo**: once ``dur > tail`` or ``price / top < cusp`` the auction cannot be taken; the
  caller resets it (``tic = now``, new ``top`` from the current oracle).  A price of zero
  (linear curve past ``tau``) is treated as done too, since a free take is not a linear offer.
- **keeper incentive** ``tip + chip * tab`` per bark and per redo, paid by the protocol to
  the caller (Fills.incentive) if tip or chip is set.
- **close**: tab paid -> the rest of the lot stays with the borrower; lot gone with tab
  unpaid -> the auctioned debt not yet repaid is written off (bad debt in the Vow).

Bark and redo need a transaction: with no keeper able to get included (``caller`` = -1)
nothing is kicked or reset that round.  Defaults: ETH-B (mid-2021).

Source: shared/reference/mechanisms.md section 3.3 (makerdao/dss:src/dog.sol, clip.sol,
abaci.sol @fa4f663); parameter sets from the Maker forum threads cited there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from cascadelab.schema import param
from mechanisms.abacus import CurveField, StairstepExponentialDecrease
from mechanisms.auctions import AuctionMechanism, cap_in_order, group_cumsum_before
from mechanisms.base import Bids, Fills, FloatArray, IntArray, Offers
from mechanisms.settlement import allocate_in_order

if TYPE_CHECKING:
    from cascadelab.book import PositionBook


@dataclass(frozen=True)
class DutchAuctionConfig:
    """Parameters of a Maker Liq 2.0 Dutch auction (defaults: ETH-B, mid-2021; YFI-A in the docs)."""

    kind_id: ClassVar[str] = "dutch_auction"
    buf: float = param(1.20, lo=0.0, lo_open=True, doc="starting price = buf * oracle price (ETH-B 1.20, YFI-A 1.30)")
    chop: float = param(1.13, lo=1.0, hi=10.0, doc="penalty multiplier: tab = debt * chop (13%)")
    tail: float = param(5400.0, lo=0.0, lo_open=True,
                        doc="seconds after which an auction must be reset (ETH-B 90 min, YFI-A 140 min)")
    cusp: float = param(0.40, lo=0.0, hi=1.0, doc="reset once price / top falls below this (0.40)")
    chip: float = param(0.001, lo=0.0, hi=1.0, doc="keeper reward per bark/redo as a fraction of tab (0.1%)")
    tip: float = param(300.0, lo=0.0, doc="flat keeper reward per bark/redo, debt units (ETH-B 300 DAI, YFI-A 0)")
    hole: float = param(15e6, lo=0.0, lo_open=True,
                        doc="max tab in auctions per collateral asset, debt units (ETH-B 15M DAI, YFI-A 5M)")
    Hole: float = param(100e6, lo=0.0, lo_open=True, doc="max tab in auctions of the whole protocol (100M DAI)")
    curve: CurveField = param(default_factory=StairstepExponentialDecrease,
                              doc='price curve table: {kind = "linear", tau} | {kind = "stairstep_exponential", '
                                  'cut, step} | {kind = "exponential", cut}; times in seconds (ETH-B: 0.99 per 60 s)')


class DutchAuction(AuctionMechanism):
    """Maker Liq 2.0 Dutch auction (Dog + Clipper): falling price from buf * oracle, resets, keeper incentives."""

    name: ClassVar[str] = "dutch_auction"
    Config: ClassVar[type] = DutchAuctionConfig
    source: ClassVar[str] = "Maker dss dog.sol, clip.sol, abaci.sol @fa4f663 (mechanisms.md 3.3)"
    columns = (*AuctionMechanism.columns, "ilk", "tic", "top")

    def __init__(self, config: DutchAuctionConfig, protocol: int, n_assets: int, *, dt_seconds: float = 60.0) -> None:
        super().__init__(config, protocol, n_assets, dt_seconds=dt_seconds)
        self.ilk = np.zeros(0, dtype=np.int64)  # asset whose hole the auction counts against
        self.tic = np.zeros(0, dtype=np.int64)  # step of the last kick or redo
        self.top = np.zeros((0, n_assets))  # starting price per asset unit, debt units
        self._offers = Offers.empty(n_assets)
        self._offer_rows = np.zeros(0, dtype=np.int64)
        self._pending: list[Fills] = []  # incentives owed to the caller, paid at the next settle

    # ----------------------------------------------------------------- price

    def price_factor(self, t: int, rows: IntArray | slice = slice(None)) -> FloatArray:
        """price / top of auctions ``rows`` at step ``t``."""
        dur = (t - self.tic[rows]) * self.dt_seconds
        return self.config.curve.factor(dur)

    def _done(self, t: int) -> np.ndarray:
        """Clipper.status: the auction needs a redo (too old, or price fell below cusp * top)."""
        dur = (t - self.tic) * self.dt_seconds
        f = self.config.curve.factor(dur)
        return (dur > self.config.tail) | (f < self.config.cusp) | (f <= 0.0)

    def _top(self, px: FloatArray, p_debt: float) -> FloatArray:
        return self.config.buf * px[: self.n_assets] / p_debt

    def _incentive(self, rows: IntArray) -> None:
        cfg = self.config
        if rows.size and (cfg.tip > 0 or cfg.chip > 0):
            self._pending.append(Fills.make(self.a_pos[rows], self.caller, self.n_assets,
                                            incentive=cfg.tip + cfg.chip * self.tab[rows]))

    # ----------------------------------------------------------------- interface

    def idle(self) -> bool:
        """No auction running, no incentive owed, nothing to bark: offers and settle would do nothing."""
        return self.liquidatable.size == 0 and self.n_auctions == 0 and not self._pending

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> Offers:
        """Redo auctions that are done, bark newly liquidatable positions, then offer every live auction."""
        p_debt = float(oracle_px[book.debt_asset[self.protocol]])
        self._reconcile(book)
        if self.caller >= 0:
            live = (self.tab > 0) & (self.lot > 0).any(axis=1)
            redo = np.flatnonzero(live & self._done(t))
            self.top[redo] = self._top(oracle_px, p_debt)
            self.tic[redo] = t
            self._incentive(redo)
            self._bark(book, oracle_px, p_debt, t)
        self._lock(book)

        live = (self.tab > 0) & (self.lot > 0).any(axis=1) & ~self._done(t)
        rows = np.flatnonzero(live)
        price = self.top[rows] * self.price_factor(t, rows)[:, None]  # (k, A) debt units per unit
        value = np.einsum("ij,ij->i", self.lot[rows], price)
        ok = value > 0
        rows, value = rows[ok], value[ok]
        max_pay = np.minimum(self.tab[rows], value)
        self._offer_rows = rows
        self._offers = Offers(
            position=self.a_pos[rows],
            max_pay=max_pay,
            receive_per_pay=self.lot[rows] / value[:, None],
            repay_per_pay=np.minimum(self.due[rows], max_pay) / max_pay,  # if all of max_pay is taken: debt first
            min_pay=np.zeros(rows.size),
            since=self.tic[rows],
        )
        return self._offers

    def _bark(self, book: PositionBook, px: FloatArray, p_debt: float, t: int) -> None:
        """Dog.bark every eligible position within the hole/Hole caps (vectorised over positions)."""
        cfg = self.config
        pos, free_c, free_d = self._to_kick(book, px)
        if pos.size == 0:
            return
        ilk = self._ilk(free_c, px)
        in_auction = np.where((self.lot > 0).any(axis=1), self.tab, 0.0)  # Dog.digs drops a closed auction's tab
        dirt = np.bincount(self.ilk, weights=in_auction, minlength=self.n_assets)
        want = free_d * cfg.chop
        grant = cap_in_order(want, ilk, cfg.hole - dirt, cfg.Hole - float(in_auction.sum()))
        ok = grant > 0
        frac = grant[ok] / want[ok]
        lot = free_c[ok] * frac[:, None]
        k = int(ok.sum())
        first = self.n_auctions
        self._append(
            a_pos=pos[ok], ilk=ilk[ok], lot=lot, lot0=lot.copy(), due=free_d[ok] * frac, tab=grant[ok], tab0=grant[ok].copy(),
            kicked=np.full(k, t, dtype=np.int64), tic=np.full(k, t, dtype=np.int64),
            top=np.tile(self._top(px, p_debt), (k, 1)),
        )
        self._incentive(np.arange(first, first + k))

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills:
        """Clipper.take for each accepted bid, in bid order; plus the incentives owed for this round's barks/redos."""
        parts, self._pending = self._pending, []
        off, taker, pay = allocate_in_order(self._offers, bids)
        if off.size:
            rows = self._offer_rows[off]
            pos = self.a_pos[rows]
            seized = np.minimum(pay[:, None] * self._offers.receive_per_pay[off], book.collateral[pos])
            repaid = np.clip(self.due[rows] - group_cumsum_before(rows, pay), 0.0, pay)  # debt first, penalty last
            np.subtract.at(self.tab, rows, pay)
            np.subtract.at(self.lot, rows, seized)
            np.subtract.at(self.due, rows, repaid)
            for col in (self.tab, self.lot, self.due):
                np.maximum(col, 0.0, out=col)
            self._exhausted(np.unique(rows))
            parts.append(Fills.make(pos, taker, self.n_assets, repaid=repaid, paid=pay, seized=seized))
        return Fills.concat(parts, self.n_assets)

    def end_step(self, book: PositionBook, t: int) -> Fills:
        """Close auctions whose tab is paid (leftover lot stays with the borrower) or whose lot is gone (write off)."""
        self._reconcile(book)
        rows = np.arange(self.n_auctions)
        lot_gone, tab_paid = self._exhausted(rows)
        self.due[tab_paid] = 0.0
        return self._close(book, lot_gone | tab_paid, np.where(lot_gone, self.due, 0.0))
