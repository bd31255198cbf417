"""Bookkeeping shared by Maker's auctions (Dutch, Liq 2.0; English, Liq 1.x), and the English auction's records.

An auction is a claim on part of a position: ``lot`` collateral units (a row over assets,
pro rata for multi-collateral positions), ``due`` debt units it covers and ``tab`` = due *
chop the protocol wants back.  The collateral *stays in the position* until a keeper takes
it (so PositionBook.apply stays the only mutator and leftovers are simply "returned to the
borrower"); the debt is repaid from what keepers pay.  Auctions are parallel arrays, one row
per auction, appended at kick and dropped when they close, so every per-step operation is
vectorised over auctions.

A position may carry several auctions (Maker can bark/bite the rest of a vault while earlier
auctions run: a capped Dutch kick, or 50-ETH English lots).  What is not yet in an auction is
the position's *free* part (collateral - committed lots, debt - committed dues); a new auction
starts only when the free part is unhealthy at the oracle price (Dog.bark / Cat.bite require
ink*spot < art*rate of what is left in the vault).  While any auction runs, the position is
locked (``book.locked``): borrower cohorts leave it alone.  Stability fees are not modelled
(Maker's ``rate`` = 1), nor the ``dust`` floor (no production value in the reference).

Source: shared/reference/mechanisms.md section 3 (makerdao/dss:src/{dog,clip,cat,flip}.sol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from mechanisms.base import PROTOCOL, Bids, Fills, FloatArray, IntArray, MechanismBase, Offers
from mechanisms.settlement import write_off_empty

if TYPE_CHECKING:
    from cascadelab.book import PositionBook

BoolArray = npt.NDArray[np.bool_]

NOBODY = -1
"""``guy`` of an English auction without bids; ``caller`` when no keeper can transact."""

EPS = 1e-9
"""Relative size below which an auction's lot or tab counts as exhausted (floating-point residue)."""


@dataclass(frozen=True)
class AuctionOffers(Offers):
    """English-auction offers: standing bids on fixed lots (Flipper), not linear terms.

    Base fields, for code that reads any Offers: ``max_pay`` = tab (the largest valid bid),
    ``min_pay`` = the least the next bid may be, ``receive_per_pay`` = lot / tab,
    ``repay_per_pay`` = due / tab.  Bidders read the standing state below and update their
    copy in place as they bid, so keepers later in the step's order see the new high bid.
    """

    auction: IntArray  # row of the auction in the mechanism
    lot: FloatArray  # (k, A) collateral units on offer now
    bid: FloatArray  # standing bid (debt units)
    tab: FloatArray  # bid that ends the tend phase
    guy: IntArray  # keeper holding the standing bid, NOBODY if none
    beg: float  # minimum raise: new bid >= beg * bid (tend), new lot <= lot / beg (dent)

    @classmethod
    def empty(cls, n_assets: int) -> AuctionOffers:
        z, zi = np.zeros(0), np.zeros(0, dtype=np.int64)
        return cls(position=zi, max_pay=z, receive_per_pay=np.zeros((0, n_assets)), repay_per_pay=z, min_pay=z,
                   since=zi, auction=zi, lot=np.zeros((0, n_assets)), bid=z, tab=z, guy=zi, beg=1.0)

    @property
    def dent(self) -> BoolArray:
        """Rows in the dent phase (bid == tab: bidders now ask for less collateral)."""
        return self.bid >= self.tab


@dataclass(frozen=True)
class AuctionBids(Bids):
    """English-auction bids: ``pay`` is the bid (tend) and ``lot`` the collateral asked for (dent).

    ``lot`` None means "the lot as offered" (a tend bid).
    """

    lot: FloatArray | None = None  # (k, A)

    @classmethod
    def empty(cls) -> AuctionBids:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), None)


def group_cumsum_before(group: IntArray, x: FloatArray) -> FloatArray:
    """For each row, the sum of ``x`` over earlier rows (in array order) of the same group."""
    if x.size == 0:
        return np.zeros(0)
    order = np.argsort(group, kind="stable")
    g, xs = group[order], x[order]
    csum = np.cumsum(xs)
    start = np.concatenate(([0], np.flatnonzero(np.diff(g)) + 1))  # np.r_ costs ~10 us a call
    base = np.repeat(csum[start] - xs[start], np.diff(start, append=g.size))
    out = np.empty_like(x)
    out[order] = csum - xs - base
    return out


def cap_in_order(amount: FloatArray, group: IntArray, group_room: FloatArray, total_room: float) -> FloatArray:
    """Grant each request in order as much as both caps still allow (Dog.bark's hole/Hole, Cat 1.2's box).

    Request i gets min(amount_i, room of its group - granted earlier in the group, total room -
    granted earlier overall).  Done as two cumulative passes: once a cap binds, every later
    request under it gets nothing, so capping the per-group grants by the total in order gives
    the same result as granting one request at a time.
    """
    amount = np.asarray(amount, dtype=np.float64)
    before = group_cumsum_before(group, amount)
    per_group = np.clip(np.minimum(amount, group_room[group] - before), 0.0, None)
    before_total = np.cumsum(per_group) - per_group
    return np.clip(np.minimum(per_group, total_room - before_total), 0.0, None)


class AuctionMechanism(MechanismBase):
    """Auction rows, the free part of positions, locks and closing write-offs (shared by Dutch and English)."""

    columns: ClassVar[tuple[str, ...]] = ("a_pos", "lot", "lot0", "due", "tab", "tab0", "kicked")
    """Per-auction arrays; subclasses add theirs (and initialise them in __init__)."""

    def __init__(self, config: Any, protocol: int, n_assets: int, *, dt_seconds: float = 60.0) -> None:
        super().__init__(config, protocol, n_assets, dt_seconds=dt_seconds)
        self.a_pos = np.zeros(0, dtype=np.int64)  # position each auction is a claim on
        self.lot = np.zeros((0, n_assets))  # collateral units still in the auction
        self.lot0 = np.zeros((0, n_assets))  # at kick (scale for the exhaustion test)
        self.due = np.zeros(0)  # debt units still covered by the auction
        self.tab = np.zeros(0)  # debt units the protocol still wants (due * chop at kick)
        self.tab0 = np.zeros(0)
        self.kicked = np.zeros(0, dtype=np.int64)  # step of the kick

    # ----------------------------------------------------------------- rows

    @property
    def n_auctions(self) -> int:
        return int(self.a_pos.shape[0])

    def _append(self, **cols: np.ndarray) -> None:
        for name in self.columns:
            setattr(self, name, np.concatenate([getattr(self, name), cols[name]]))

    def _keep(self, mask: BoolArray) -> None:
        for name in self.columns:
            setattr(self, name, getattr(self, name)[mask])

    # ----------------------------------------------------------------- positions

    def _free_part(self, book: PositionBook, pos: IntArray) -> tuple[FloatArray, FloatArray]:
        """Collateral and debt of ``pos`` not yet claimed by a running auction."""
        s = book.slices[self.protocol]
        lot = np.zeros((s.stop - s.start, self.n_assets))
        due = np.zeros(s.stop - s.start)
        np.add.at(lot, self.a_pos - s.start, self.lot)
        np.add.at(due, self.a_pos - s.start, self.due)
        free_c = np.maximum(book.collateral[pos] - lot[pos - s.start], 0.0)
        free_d = np.maximum(book.debt[pos] - due[pos - s.start], 0.0)
        return free_c, free_d

    def _reconcile(self, book: PositionBook) -> None:
        """Scale claims down to what positions hold (PositionBook.apply snaps dust-level residue to zero)."""
        if self.n_auctions == 0:
            return
        s = book.slices[self.protocol]
        rel = self.a_pos - s.start
        lot = np.zeros((s.stop - s.start, self.n_assets))
        due = np.zeros(s.stop - s.start)
        np.add.at(lot, rel, self.lot)
        np.add.at(due, rel, self.due)
        have_c, have_d = book.collateral[s], book.debt[s]
        scale_c = np.divide(have_c, lot, out=np.ones_like(lot), where=lot > have_c)
        scale_d = np.divide(have_d, due, out=np.ones_like(due), where=due > have_d)
        self.lot *= scale_c[rel]
        self.due *= scale_d[rel]

    def _to_kick(self, book: PositionBook, px: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
        """Positions whose free part can be put up for auction now, most underwater first.

        Candidates are the liquidatable positions and those already in an auction; the free
        part must hold collateral and debt and be unhealthy at the oracle price ``px``.
        Returns (positions, free collateral (k, A), free debt).
        """
        pos = np.union1d(self.liquidatable, self.a_pos).astype(np.int64)
        if pos.size == 0:
            return pos, np.zeros((0, self.n_assets)), np.zeros(0)
        free_c, free_d = self._free_part(book, pos)
        weighted = free_c @ (book.lt[self.protocol] * px[: self.n_assets])
        debt_value = free_d * px[book.debt_asset[self.protocol]]
        real = (free_d > EPS * np.maximum(book.debt0[pos], 1.0)) & (free_c > 0).any(axis=1)
        ok = real & (weighted < debt_value)
        ratio = weighted[ok] / debt_value[ok]
        order = np.argsort(ratio, kind="stable")
        sel = np.flatnonzero(ok)[order]
        return pos[sel], free_c[sel], free_d[sel]

    @staticmethod
    def _ilk(free_c: FloatArray, px: FloatArray) -> IntArray:
        """The 'ilk' of an auction: the asset holding most of the collateral's value."""
        return np.argmax(free_c * px[: free_c.shape[1]], axis=1).astype(np.int64)

    def _lock(self, book: PositionBook) -> None:
        """Positions with a running auction are locked; the others of this protocol are not."""
        s = book.slices[self.protocol]
        book.locked[s] = False
        book.locked[self.a_pos] = True

    def _close(self, book: PositionBook, closed: BoolArray, write_off: FloatArray) -> Fills:
        """Drop ``closed`` auctions; write off ``write_off`` debt of each and whatever empty unlocked positions owe.

        An empty position (no collateral left) that no running auction claims has its whole
        remaining debt written off once, in place of the per-auction rows on it.
        """
        pos = self.a_pos[closed]
        amount = np.minimum(write_off[closed], book.debt[pos])
        self._keep(~closed)
        self._lock(book)
        empty = write_off_empty(book, self.protocol)
        keep = ~book.locked[empty.position]
        empty = Fills(*(getattr(empty, f)[keep] for f in Fills.__dataclass_fields__))
        rows = (amount > 0) & ~np.isin(pos, empty.position)
        per_auction = Fills.make(pos[rows], PROTOCOL, self.n_assets, written_off=amount[rows])
        return Fills.concat([per_auction, empty], self.n_assets)

    def _exhausted(self, rows: IntArray) -> tuple[BoolArray, BoolArray]:
        """(lot gone, tab paid) for auction ``rows``, snapping floating residue to zero."""
        lot_gone = (self.lot[rows] <= EPS * self.lot0[rows]).all(axis=1)
        self.lot[rows[lot_gone]] = 0.0
        tab_paid = self.tab[rows] <= EPS * self.tab0[rows]
        self.tab[rows[tab_paid]] = 0.0
        return lot_gone, tab_paid
