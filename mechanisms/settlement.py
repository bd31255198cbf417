"""Settlement steps shared by mechanisms: filling linear offers in bid order, writing off empty positions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mechanisms.base import PROTOCOL, Bids, Fills, FloatArray, IntArray, Offers

if TYPE_CHECKING:
    from cascadelab.book import PositionBook


def fill_in_order(book: PositionBook, offers: Offers, bids: Bids) -> Fills:
    """Fill bids on linear offers in priority order, each capped by what earlier bids left.

    Bid j on offer o pays min(pay_j, max_pay_o - sum of earlier fills on o); bids below
    the offer's ``min_pay`` are refused.  Collateral handed over is pay * receive_per_pay
    (never more than the position holds); the debt repaid is pay * repay_per_pay.
    Protocol fees on top of what the taker receives are added by the mechanism afterwards
    (e.g. ``fixed_bonus.with_protocol_share``), since ``receive_per_pay`` is the taker's part.
    """
    n_assets = book.n_assets
    off, taker, eff = allocate_in_order(offers, bids)
    if off.size == 0:
        return Fills.empty(n_assets)
    pos = offers.position[off]
    seized = eff[:, None] * offers.receive_per_pay[off]
    seized = np.minimum(seized, book.collateral[pos])  # guard against rounding past the balance
    return Fills.make(
        pos, taker, n_assets,
        repaid=np.minimum(eff * offers.repay_per_pay[off], book.debt[pos]),
        paid=eff,
        seized=seized,
    )


def allocate_in_order(offers: Offers, bids: Bids) -> tuple[IntArray, IntArray, FloatArray]:
    """The accepted part of each bid, in bid order: (offer, taker, pay) of the bids that pay > 0.

    Bid j on offer o pays min(pay_j, max_pay_o - sum of earlier accepted pay on o), or
    nothing if that is below the offer's ``min_pay``.
    """
    if bids.size == 0 or offers.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    order = np.argsort(bids.offer, kind="stable")
    off, pay, taker = bids.offer[order], np.maximum(bids.pay[order], 0.0), bids.taker[order]
    csum = np.cumsum(pay)
    first = np.empty(off.size, dtype=bool)  # the first bid on its offer (np.diff and np.clip cost ~5 us a call)
    first[0] = True
    np.not_equal(off[1:], off[:-1], out=first[1:])
    start = np.maximum.accumulate(np.where(first, np.arange(off.size), 0))  # each bid's offer's first bid
    used_before = csum - pay - (csum[start] - pay[start])  # paid by earlier bids on the same offer
    eff = np.maximum(np.minimum(pay, offers.max_pay[off] - used_before), 0.0)  # zeros are dropped below
    eff[eff < offers.min_pay[off]] = 0.0
    restore = np.empty_like(order)
    restore[order] = np.arange(order.size)
    eff, off, taker = eff[restore], off[restore], taker[restore]
    ok = eff > 0
    return off[ok], taker[ok], eff[ok]


def write_off_empty(book: PositionBook, protocol: int) -> Fills:
    """Write off the debt of this protocol's positions that have no collateral left (bad debt)."""
    pos = book.without_collateral(protocol)
    if pos.size == 0:
        return Fills.empty(book.n_assets)
    return Fills.make(pos, PROTOCOL, book.n_assets, written_off=book.debt[pos])
