"""English auction: Maker Liquidations 1.0 / 1.2 (Cat + Flipper), the mechanism of Black Thursday.

- **bite** (in ``offers``): the free part of every unhealthy position is cut into lots of at
  most ``lump`` units of its main collateral asset (Liq 1.0: ``lot = min(ink, lump)``,
  ``art' = art * lot / ink``; several lots are bitten at once, as Maker's keepers did) and,
  with the Liq 1.2 caps, at most ``dunk`` of tab per lot and ``box`` of tab in auctions in
  total (``litter``).  Each lot is an auction with ``tab = art' * chop``, bid 0, no bidder,
  ``end = now + tau``.
- **tend** (``settle``): while bid < tab the lot is fixed; a new bid must satisfy bid <= tab,
  bid > previous and (bid >= beg * previous or bid == tab).  The first bid may be 0 (the
  1-wei bids of Black Thursday).  **dent**: once bid == tab the bid is fixed and a new bid asks
  for a smaller lot, lot * beg <= previous lot; the collateral given up goes back to the
  borrower (here: it simply stays in the position).  Every accepted bid sets ``tic = now +
  ttl``.  Bids are accepted only while ``tic`` (if set) and ``end`` are in the future.
- **capital lock**: the bidder's DAI is in the auction while its bid stands and is returned
  when it is outbid (Flipper moves it at tend/dent); ``committed(keeper)`` reports it, and
  keepers count it as unavailable (agents/liquidators.py ``free_capital``).
- **deal** (``end_step``): once ``tic`` or ``end`` has passed with a standing bid, the bidder
  pays its bid and receives the lot.  The bid repays the lot's debt first; any debt the bid
  does not cover is written off (the Vow's ``sin``).
- **tick** (``end_step``): an auction that reached ``end`` without any bid restarts with
  ``end = now + tau``.

Bites need a transaction: with no keeper able to get included (``caller`` = -1) no new lot
is bitten that round.  Bidding strategies live in agents/auction_bidders.py.
Defaults: the values live on Black Thursday (mechanisms.md 3.2: beg 3%, ttl 10 min, tau
~6 h [UNV], lump 50 ETH, chop 13%); box/dunk default to unlimited (Liq 1.0).

Settlement validates bids one auction at a time, in bid order, as the chain would; the
check is vectorised across auctions and repeats only while some auction still has an
invalid bid left (bidders submit bids that were valid when they made them, so this loop
normally runs once).

Source: shared/reference/mechanisms.md section 3.2 (makerdao/dss:src/cat.sol@f632302,
flip.sol; Liq 1.2: cat.sol@ee01dab).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from cascadelab.schema import param
from mechanisms.auctions import NOBODY, AuctionMechanism, AuctionOffers, cap_in_order
from mechanisms.base import Bids, Fills, FloatArray, IntArray

if TYPE_CHECKING:
    from cascadelab.book import PositionBook

REL = 1e-12
"""Relative slack when comparing bids and lots (floating point)."""


@dataclass(frozen=True)
class EnglishAuctionConfig:
    """Parameters of a Maker Liq 1.x English auction (defaults: ETH-A on Black Thursday, March 2020)."""

    kind_id: ClassVar[str] = "english_auction"
    lump: float = param(50.0, lo=0.0, lo_open=True, doc="collateral units of the main asset per lot (ETH: 50)")
    chop: float = param(1.13, lo=1.0, hi=10.0, doc="penalty multiplier: tab = debt * chop (13%)")
    beg: float = param(1.03, lo=1.0, hi=10.0, doc="minimum raise as a multiplier: bid >= beg * bid (tend), "
                                                   "lot <= lot / beg (dent) (3%; code default 1.05)")
    ttl: float = param(600.0, lo=0.0, lo_open=True, doc="seconds a bid must stand unbeaten to win (10 min)")
    tau: float = param(21600.0, lo=0.0, lo_open=True, doc="seconds an auction lasts (~6 h [UNV])")
    dunk: float = param(math.inf, lo=0.0, lo_open=True, doc="Liq 1.2: max tab per lot, debt units (inf: Liq 1.0)")
    box: float = param(math.inf, lo=0.0, lo_open=True, doc="Liq 1.2: max tab in auctions at once (inf: Liq 1.0)")


class EnglishAuction(AuctionMechanism):
    """Maker Liq 1.x English auction (Cat + Flipper): fixed lots, tend/dent bids, ttl/tau, capital locked by bids."""

    name: ClassVar[str] = "english_auction"
    Config: ClassVar[type] = EnglishAuctionConfig
    source: ClassVar[str] = "Maker dss cat.sol@f632302 (1.2: @ee01dab), flip.sol (mechanisms.md 3.2)"
    columns = (*AuctionMechanism.columns, "bid", "guy", "tic", "end")

    def __init__(self, config: EnglishAuctionConfig, protocol: int, n_assets: int, *,
                 dt_seconds: float = 60.0) -> None:
        super().__init__(config, protocol, n_assets, dt_seconds=dt_seconds)
        self.bid = np.zeros(0)  # standing bid, debt units
        self.guy = np.zeros(0, dtype=np.int64)  # keeper holding it, NOBODY before the first bid
        self.tic = np.zeros(0)  # seconds: bid expiry (0: no bid yet)
        self.end = np.zeros(0)  # seconds: auction end
        self._offers = AuctionOffers.empty(n_assets)

    def committed(self, keeper: int) -> float:
        """Debt units ``keeper`` has locked in standing bids."""
        return float(self.bid[self.guy == keeper].sum())

    def _biddable(self, now: float) -> np.ndarray:
        return ((self.tic == 0) | (self.tic > now)) & (self.end > now)

    # ----------------------------------------------------------------- interface

    def offers(self, book: PositionBook, oracle_px: FloatArray, t: int) -> AuctionOffers:
        """Bite the free part of unhealthy positions into lots, then offer every auction still open to bids."""
        now = t * self.dt_seconds
        self._reconcile(book)
        if self.caller >= 0:
            self._bite(book, oracle_px, t)
        self._lock(book)
        rows = np.flatnonzero(self._biddable(now))
        tab, bid = self.tab[rows], self.bid[rows]
        has_bid = self.guy[rows] != NOBODY
        self._offers = AuctionOffers(
            position=self.a_pos[rows],
            max_pay=tab.copy(),
            receive_per_pay=self.lot[rows] / tab[:, None],
            repay_per_pay=np.minimum(self.due[rows], tab) / tab,
            min_pay=np.where(bid >= tab, tab, np.where(has_bid, np.minimum(self.config.beg * bid, tab), 0.0)),
            since=self.kicked[rows],
            auction=rows,
            lot=self.lot[rows].copy(),
            bid=bid.copy(),
            tab=tab.copy(),
            guy=self.guy[rows].copy(),
            beg=self.config.beg,
        )
        return self._offers

    def _bite(self, book: PositionBook, px: FloatArray, t: int) -> None:
        """Cat.bite: cut each eligible position's free part into lots (vectorised over positions and lots)."""
        cfg = self.config
        pos, free_c, free_d = self._to_kick(book, px)
        if pos.size == 0:
            return
        ink = free_c[np.arange(pos.size), self._ilk(free_c, px)]
        with np.errstate(over="ignore"):  # lump / dust (ink ~ 1e-324) overflows to inf: one lot, as intended
            share = np.minimum(1.0, np.minimum(cfg.lump / ink, cfg.dunk / (cfg.chop * free_d)))  # of the free part
        n_lots = np.ceil(1.0 / share - 1e-9).astype(np.int64)
        which = np.repeat(np.arange(pos.size), n_lots)
        k_in = np.arange(which.size) - np.repeat(np.cumsum(n_lots) - n_lots, n_lots)
        frac = np.minimum(share[which], 1.0 - k_in * share[which])  # the last lot takes what is left
        want = free_d[which] * frac * cfg.chop
        litter = float(self.tab.sum())
        grant = cap_in_order(want, np.zeros(which.size, dtype=np.int64), np.array([np.inf]), cfg.box - litter)
        ok = grant > 0
        frac = frac[ok] * grant[ok] / want[ok]
        which = which[ok]
        lot = free_c[which] * frac[:, None]
        k = which.size
        self._append(
            a_pos=pos[which], lot=lot, lot0=lot.copy(), due=free_d[which] * frac, tab=grant[ok], tab0=grant[ok].copy(),
            kicked=np.full(k, t, dtype=np.int64), bid=np.zeros(k), guy=np.full(k, NOBODY, dtype=np.int64),
            tic=np.zeros(k), end=np.full(k, t * self.dt_seconds + cfg.tau),
        )

    def settle(self, book: PositionBook, bids: Bids, t: int) -> Fills:
        """Accept valid tend/dent bids in bid order; the last valid bid on an auction stands. No collateral moves."""
        if bids.size == 0 or self._offers.size == 0:
            return Fills.empty(self.n_assets)
        rows = self._offers.auction[bids.offer]
        lot = getattr(bids, "lot", None)
        lot = self.lot[rows] if lot is None else np.asarray(lot, dtype=np.float64)
        valid = np.flatnonzero(self._valid_in_order(rows, bids.pay, lot, t * self.dt_seconds))
        if valid.size == 0:
            return Fills.empty(self.n_assets)
        valid = valid[np.argsort(rows[valid], kind="stable")]
        r = rows[valid]
        last = valid[np.r_[r[1:] != r[:-1], True]]  # the last valid bid on each auction
        a = rows[last]
        self.bid[a], self.lot[a], self.guy[a] = bids.pay[last], lot[last], bids.taker[last]
        self.tic[a] = t * self.dt_seconds + self.config.ttl
        return Fills.empty(self.n_assets)

    def _valid_in_order(self, rows: IntArray, pay: FloatArray, lot: FloatArray, now: float) -> np.ndarray:
        """Which bids the Flipper accepts when they arrive in this order (sequential per auction).

        Each bid is checked against the auction's state left by the valid bids before it.
        Checking every bid against its predecessor is exact up to the first invalid bid of an
        auction; that one is dropped and the check repeats for the bids after it.
        """
        beg = self.config.beg
        alive = np.ones(rows.size, dtype=bool)
        order = np.argsort(rows, kind="stable")
        open_now = self._biddable(now)
        while True:
            idx = order[alive[order]]
            r = rows[idx]
            first = np.r_[True, r[1:] != r[:-1]]
            prev = np.maximum(np.arange(idx.size) - 1, 0)  # the preceding bid (same auction unless first)
            prev_bid = np.where(first, self.bid[r], pay[idx][prev])
            prev_lot = np.where(first[:, None], self.lot[r], lot[idx][prev])
            no_guy = first & (self.guy[r] == NOBODY)
            tab, b, lt = self.tab[r], pay[idx], lot[idx]
            tend = prev_bid < tab * (1 - REL)
            same_lot = (np.abs(lt - prev_lot) <= REL * prev_lot).all(axis=1)
            raise_ok = (b > prev_bid) & ((b >= beg * prev_bid) | (b >= tab * (1 - REL)))
            ok_tend = tend & same_lot & (b <= tab * (1 + REL)) & ((no_guy & (b >= 0)) | raise_ok)
            ok_dent = (~tend & (np.abs(b - tab) <= REL * tab) & (lt >= 0).all(axis=1)
                       & (lt * beg <= prev_lot * (1 + REL)).all(axis=1) & (lt < prev_lot).any(axis=1))
            bad = ~(open_now[r] & (ok_tend | ok_dent))
            if not bad.any():
                return alive
            seen = np.cumsum(bad) - bad  # invalid bids before this one, over all auctions
            group_start = np.maximum.accumulate(np.where(first, np.arange(idx.size), 0))
            first_bad = bad & (seen == seen[group_start])
            alive[idx[first_bad]] = False

    def end_step(self, book: PositionBook, t: int) -> Fills:
        """Deal auctions whose bid stood for ttl (or that reached end with a bid); tick those that ended without one."""
        now = t * self.dt_seconds
        self._reconcile(book)
        deal = (self.guy != NOBODY) & ((self.tic < now) | (self.end < now))
        rows = np.flatnonzero(deal)
        pos = self.a_pos[rows]
        bid, due = self.bid[rows], self.due[rows]
        repaid = np.minimum(bid, due)  # debt first; the bid beyond it is penalty
        won = Fills.make(pos, self.guy[rows], self.n_assets, repaid=repaid, paid=bid,
                         seized=np.minimum(self.lot[rows], book.collateral[pos]), written_off=due - repaid)
        tick = (self.guy == NOBODY) & (self.end < now)
        self.end[tick] = now + self.config.tau
        closed = self._close(book, deal, np.zeros(self.n_auctions))  # the deal rows carry the write-offs
        return Fills.concat([won, closed], self.n_assets)
