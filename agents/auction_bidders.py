"""How keepers bid in English auctions (Maker Liq 1.x Flipper): standing bids, not takes.

A keeper values an auction's lot at what selling it would bring on the venues now (after
the impact of the sales already planned this step and of the lots it already stands to
win) minus gas, and its largest acceptable payment is the cost ``c`` at which its
strategy's profit test (agents/liquidators.py ``STRATEGIES``) still just passes:
``value - c >= rule(c)`` (found by bisection, so any monotone rule works).  Then, auction by
auction (vectorised):

- **tend** (bid < tab): it bids that maximum (capped at tab) if the bid is valid, i.e. at
  least ``beg`` times the standing bid (or equal to tab).  A ``lowball`` keeper bids as
  little as the Flipper allows: it opens an auction nobody has bid on at **0 DAI**, leaves
  a zero bid another keeper holds alone (raising it would only trade 1-wei bids and restart
  ttl: the lot still clears at ~0; the record's four zero-bid addresses won ~62,890 ETH
  between them, mechanisms.md 7.1), and against a positive bid raises by the minimum,
  ``min(beg * bid, tab)``, while that is within its maximum.  Alone on the chain, it wins
  the lot for nothing (Black Thursday, mechanisms.md 3.2 and 7.1).
- **dent** (bid == tab): it asks for the smallest lot still worth tab to it, if that is at
  most the standing lot / beg.  Proceeds are concave in the amount sold (impact), so scaling
  the lot by need / value never asks for too little.

It bids only if it can get included (gas price <= ``max_gas_gwei``), does not already hold
the bid, has seen the auction for ``latency_steps``, has transactions left this step, and
its *free* capital (capital minus what its standing bids lock, ``Liquidator.free_capital``)
covers the new bid.  Every bid is a transaction: its gas is paid at once, won or not.  The
keeper updates the offers' standing state in place, so keepers later in the step's order
see the new high bid, as they would on chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mechanisms.auctions import AuctionBids, AuctionOffers

if TYPE_CHECKING:
    from agents.liquidators import Liquidator

FloatArray = npt.NDArray[np.float64]

OPENS_AT_ZERO = frozenset({"lowball"})
"""Strategies that open an auction without bids at 0 DAI."""


def max_cost(keeper: Liquidator, value: FloatArray) -> FloatArray:
    """Largest USD cost c in [0, value] with value - c >= rule(c); -1 where even c = 0 fails.

    Closed form for the built-in rules (``MAX_COST``), bisection for any other monotone rule.
    """
    from agents.liquidators import MAX_COST

    cfg, rule = keeper.config, keeper.rule
    feasible = value >= rule(cfg, np.zeros_like(value))
    inverse = MAX_COST.get(rule)
    if inverse is not None:
        return np.where(feasible, np.clip(inverse(cfg, value), 0.0, np.maximum(value, 0.0)), -1.0)
    lo = np.zeros_like(value)
    hi = np.maximum(value, 0.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        ok = value - mid >= rule(cfg, mid)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return np.where(feasible, lo, -1.0)


def bid_english(keeper: Liquidator, protocol: int, offers: AuctionOffers, t: int) -> AuctionBids:
    """One keeper's tend/dent bids on one protocol's English auctions (updates ``offers`` in place)."""
    m = keeper.model
    cfg = keeper.config
    slots = cfg.max_fills_per_step - keeper.fills_this_step
    if offers.size == 0 or slots <= 0 or not keeper.can_transact():
        return AuctionBids.empty()
    me = keeper.index
    idx = np.flatnonzero((offers.guy != me) & (t - offers.since >= cfg.latency_steps))
    if idx.size == 0:
        return AuctionBids.empty()
    gas = m.gas.cost_usd(cfg.gas_units)
    debt_px = float(m.market_px_ext()[m.book.debt_asset[protocol]])
    held = offers.lot[offers.guy == me].sum(axis=0)  # lots it stands to win already
    base = float(m.quote_sales(held[None, :])[0])
    lot, tab, bid, beg = offers.lot[idx], offers.tab[idx], offers.bid[idx], offers.beg
    value = m.quote_sales(held[None, :] + lot) - base - gas  # USD, net of this bid's gas
    dent = bid >= tab
    # tend: bid the most it would pay, if that beats the standing bid by beg
    top = np.minimum(max_cost(keeper, value) / debt_px, tab)
    uncontested = offers.guy[idx] < 0
    if cfg.strategy in OPENS_AT_ZERO:  # as little as allowed: 0 to open, a zero bid left alone, else the minimum raise
        new_bid = np.where(uncontested, 0.0, np.minimum(beg * bid, tab))
        ok_tend = ~dent & (top >= 0) & (uncontested | ((bid > 0) & (new_bid <= top)))
    else:
        new_bid = top
        ok_tend = ~dent & (top >= 0) & ((uncontested & (new_bid >= 0))
                                        | ((new_bid > bid) & ((new_bid >= beg * bid) | (new_bid >= tab))))
    # dent: ask for the smallest lot still worth tab (+ required profit) to it
    cost_dent = tab * debt_px
    need = cost_dent + keeper.rule(cfg, cost_dent) + gas
    share = np.divide(need, value + gas, out=np.full(idx.size, np.inf), where=value + gas > 0)
    ok_dent = dent & (share > 0) & (share * beg <= 1.0)
    new_lot = np.where(ok_dent[:, None], lot * np.minimum(share, 1.0)[:, None], lot)
    new_bid = np.where(dent, tab, new_bid)
    cost = new_bid * debt_px
    ok = np.flatnonzero(ok_tend | ok_dent)
    if ok.size == 0:
        return AuctionBids.empty()
    # best expected profit first; keep the prefix whose marginal value (all its lots sold together) still
    # passes the rule and whose cost its free capital covers
    won = new_lot[ok]
    standalone = m.quote_sales(held[None, :] + won) - base - gas - cost[ok]
    order = ok[np.argsort(-standalone, kind="stable")][:slots]
    total = m.quote_sales(held[None, :] + np.cumsum(new_lot[order], axis=0))
    marginal = np.diff(np.r_[base, total]) - gas - cost[order]
    take = (marginal >= keeper.rule(cfg, cost[order])) & (np.cumsum(cost[order]) <= keeper.free_capital())
    bad = np.flatnonzero(~take)
    chosen = order[: bad[0] if bad.size else order.size]
    if chosen.size == 0:
        return AuctionBids.empty()
    rows = idx[chosen]
    offers.bid[rows], offers.lot[rows], offers.guy[rows] = new_bid[chosen], new_lot[chosen], me
    keeper.fills_this_step += chosen.size
    keeper.spend_gas(gas * chosen.size)
    return AuctionBids(offer=rows, taker=np.full(rows.size, me, dtype=np.int64), pay=new_bid[chosen],
                       lot=new_lot[chosen])


def english_bids(keepers: list[Liquidator], protocol: int, offers: AuctionOffers, t: int) -> AuctionBids:
    """All keepers' bids on one protocol's English auctions, in the step's keeper order."""
    return AuctionBids.concat([bid_english(k, protocol, offers, t) for k in keepers])
