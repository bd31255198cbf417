"""Conformance suite every registered mechanism must pass (DESIGN.md section 5).

``check_fills`` checks one batch of fills against the book it is about to be applied to;
``exercise`` drives a mechanism through a falling price path with a simple bidder and
checks every batch, plus debt and collateral conservation over the whole episode,
determinism and, for mechanisms that hold collateral (``custody``), that they never hand
out more than they hold.  Tests parametrise these over ``mechanisms.registry.REGISTRY``.  Health is
deliberately *not* required to improve: below a collateral ratio of 1 + bonus a
fixed-bonus liquidation makes it worse (the toxic spiral).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mechanisms.auctions import AuctionBids, AuctionOffers
from mechanisms.base import BORROWER, REDISTRIBUTION, Bids, Fills, Offers

if TYPE_CHECKING:
    from cascadelab.book import PositionBook
    from mechanisms.base import MechanismBase

FloatArray = npt.NDArray[np.float64]
TOL = 1e-9

Bidder = Callable[[Offers, int], Bids]


def take_everything(offers: Offers, t: int) -> Bids:
    """A bidder that takes every offer in full (keeper 0); on English auctions it bids like ``raise_bids``."""
    if isinstance(offers, AuctionOffers):
        return raise_bids(offers, t)
    return Bids(offer=np.arange(offers.size, dtype=np.int64), taker=np.zeros(offers.size, dtype=np.int64),
                pay=offers.max_pay.copy())


def raise_bids(offers: AuctionOffers, t: int) -> AuctionBids:
    """English-auction bidder for the suite: two keepers take turns raising through tend into dent.

    For the first 8 steps after a kick, keeper t % 2 bids max(0.9 tab, beg * bid) capped at tab
    (tend) or asks for lot / beg (dent); then bidding stops so auctions are dealt.
    """
    rows = np.flatnonzero(t - offers.since < 8)
    dent = offers.dent[rows]
    pay = np.where(dent, offers.tab[rows], np.minimum(offers.tab[rows],
                                                      np.maximum(0.9 * offers.tab[rows], offers.beg * offers.bid[rows])))
    lot = np.where(dent[:, None], offers.lot[rows] / offers.beg, offers.lot[rows])
    return AuctionBids(offer=rows, taker=np.full(rows.size, t % 2, dtype=np.int64), pay=pay, lot=lot)


def check_fills(book: PositionBook, fills: Fills) -> list[str]:
    """Violations of the per-fill contract, judged against the book *before* the fills apply."""
    bad: list[str] = []
    arrays = [fills.repaid, fills.paid, fills.seized, fills.to_protocol, fills.written_off, fills.incentive]
    if any(not np.isfinite(a).all() for a in arrays):
        bad.append("NaN or inf in fills")
        return bad
    if fills.size == 0:
        return bad
    pos = fills.position
    if (pos < 0).any() or (pos >= book.n).any():
        bad.append("fill for a position outside the book")
        return bad
    liq = (fills.taker != BORROWER) & (fills.taker != REDISTRIBUTION)
    if (fills.seized[liq] < -TOL).any():
        bad.append("a liquidation added collateral to a position")
    if (fills.repaid[liq] < -TOL).any() or (fills.written_off < -TOL).any():
        bad.append("a liquidation increased a position's debt")
    # a custody sale (Comet storefront): the protocol hands collateral it holds to a keeper, to_protocol < 0
    sale = (fills.to_protocol < -TOL).any(axis=1)
    if (sale & ((np.abs(fills.seized) > TOL).any(axis=1) | (fills.taker < 0) | (np.abs(fills.repaid) > TOL)
                | (fills.written_off > TOL))).any():
        bad.append("negative to_protocol outside a custody sale (seized 0, nothing repaid, a keeper taker)")
    if (fills.to_protocol > np.maximum(fills.seized, 0) + TOL).any():
        bad.append("protocol share above seized")
    if (fills.incentive < -TOL).any() or (fills.incentive[fills.taker < 0] > 0).any():
        bad.append("a negative incentive, or an incentive paid to no keeper")
    n, a = book.n, book.n_assets
    seized = np.zeros((n, a))
    np.add.at(seized, pos, fills.seized)
    scale = np.maximum(book.collateral, 1.0)
    if (seized > book.collateral + TOL * scale).any():
        bad.append("seized more collateral than the position held")
    cut = np.zeros(n)
    np.add.at(cut, pos, fills.repaid + fills.written_off)
    if (cut > book.debt + TOL * np.maximum(book.debt, 1.0)).any():
        bad.append("repaid + written off exceeds the position's debt")
    if fills.repaid.sum() + fills.written_off.sum() < -TOL * max(book.debt.sum(), 1.0):
        bad.append("total debt rose")
    taken = (fills.taker != BORROWER) & ((fills.repaid > TOL) | (fills.seized > TOL).any(axis=1))
    liquidated = np.zeros(n, dtype=bool)
    liquidated[pos[taken]] = True  # e.g. a redistribution must not hand debt back to the position it liquidates
    if (cut[liquidated] < -TOL * np.maximum(book.debt[liquidated], 1.0)).any():
        bad.append("a liquidated position's debt rose")
    if (fills.paid[liq] < fills.repaid[liq] - TOL * np.maximum(fills.repaid[liq], 1.0)).any():
        bad.append("taker paid less than the debt repaid")
    return bad


def exercise(make: Callable[[], MechanismBase], book: PositionBook, oracle_prices: Sequence[FloatArray],
             bidder: Bidder = take_everything, hold_steps: int = 0) -> list[str]:
    """Drive a fresh mechanism over ``oracle_prices`` (one (A+1,) row per step) and collect violations.

    ``hold_steps`` more steps repeat the last price (so auctions can run to their end).  The
    episode is run twice on copies of the book; the fills must be identical (determinism).
    """
    oracle_prices = list(oracle_prices) + [oracle_prices[-1]] * hold_steps
    episodes = []
    bad: list[str] = []
    for _ in range(2):
        b = copy.deepcopy(book)
        mech = make()
        log: list[Fills] = []
        debt_before = b.debt.sum()
        for t, px in enumerate(oracle_prices, start=1):
            full_px = np.tile(px, (len(b.protocols), 1))
            hf = b.health(full_px)
            s = b.slices[mech.protocol]
            mech.start(np.flatnonzero(hf[s] < 1.0) + s.start, t)
            offers = mech.offers(b, px, t)
            for name in ("max_pay", "receive_per_pay", "repay_per_pay", "min_pay"):
                if not np.isfinite(getattr(offers, name)).all():
                    bad.append(f"step {t}: NaN or inf in offers.{name}")
            if (offers.max_pay < -TOL).any():
                bad.append(f"step {t}: negative max_pay")
            for fills in (mech.settle(b, bidder(offers, t), t), None):
                if fills is None:
                    fills = mech.end_step(b, t)
                bad += [f"step {t}: {v}" for v in check_fills(b, fills)]
                if not bad:
                    b.apply(fills)
                log.append(fills)
            custody = getattr(mech, "custody", None)  # collateral a backstop holds outside the book
            if custody is not None and (np.asarray(custody) < -TOL).any():
                bad.append(f"step {t}: the mechanism's custody went negative")
            if bad:
                return bad
        d_err, c_err = b.ledger_error()
        if d_err > 1e-9 or c_err > 1e-9:
            bad.append(f"ledger broken: debt error {d_err:.2e}, collateral error {c_err:.2e}")
        if b.debt.sum() > debt_before * (1 + 1e-12) + 1e-9:
            bad.append("total debt rose over the episode")
        episodes.append(log)
    a, b2 = episodes
    same = len(a) == len(b2) and all(
        np.array_equal(getattr(x, f), getattr(y, f)) for x, y in zip(a, b2, strict=True) for f in Fills.__dataclass_fields__
    )
    if not same:
        bad.append("the same inputs gave different fills")
    return bad


def empty_book_fills(make: Callable[[], MechanismBase], book: PositionBook, px: FloatArray) -> list[str]:
    """An empty book (or one with no liquidatable position) must give no offers and no fills."""
    mech = make()
    mech.start(np.zeros(0, dtype=np.int64), 1)
    offers = mech.offers(book, px, 1)
    fills = [mech.settle(book, take_everything(offers, 1), 1), mech.end_step(book, 1)]
    bad = []
    if offers.size:
        bad.append("offers on a book with nothing liquidatable")
    if any(f.size for f in fills):
        bad.append("fills on a book with nothing liquidatable")
    return bad
