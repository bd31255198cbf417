"""How much of each bid a linear offer fills, bid by bid in priority order.

``settlement.fill_in_order`` does this in one vectorised pass when every amount up to
``max_pay`` is legal.  Some rules make the running total matter: Aave's leftover rule
(a total inside (cap, max_pay) reverts) and protocol custody sales whose collateral is not
in the book.  :func:`effective_pay` walks the bids rank by rank within each offer (a
handful of keepers per offer: a short loop over ranks, vectorised over offers).
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import Bids, FloatArray, Offers

REL = 1e-12
"""Relative tolerance for 'this total is the full amount / the cap'."""


def effective_pay(offers: Offers, bids: Bids, cap: FloatArray | None = None) -> FloatArray:
    """What each bid (in bid order) actually pays.

    Each bid gets min(pay, what earlier bids on its offer left of max_pay); bids below the
    offer's min_pay get nothing.  With ``cap`` (per offer), a bid whose running total would end
    inside (cap, max_pay) is cut to bring the total to cap (or to nothing).
    """
    if bids.size == 0:
        return np.zeros(0)
    order = np.argsort(bids.offer, kind="stable")
    off = bids.offer[order]
    pay = np.maximum(bids.pay[order], 0.0)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(off)) + 1))  # np.r_ costs ~10 us a call
    rank = np.arange(off.size) - np.repeat(starts, np.diff(starts, append=off.size))
    used = np.zeros(offers.size)
    eff = np.zeros(off.size)
    for r in range(int(rank.max()) + 1):
        i = np.flatnonzero(rank == r)
        o = off[i]
        e = np.clip(np.minimum(pay[i], offers.max_pay[o] - used[o]), 0.0, None)
        e[e < offers.min_pay[o]] = 0.0
        if cap is not None:
            total = used[o] + e
            in_gap = (total > cap[o] * (1.0 + REL)) & (total < offers.max_pay[o] * (1.0 - REL))
            e = np.where(in_gap, np.maximum(cap[o] - used[o], 0.0), e)
        eff[i] = e
        used[o] += e
    out = np.empty_like(eff)
    out[order] = eff
    return out
