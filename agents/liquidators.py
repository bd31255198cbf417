"""Liquidators (keepers): decide which offers to take, pay, and sell what they seize.

A keeper is a Mesa agent with capital, a gas budget per transaction, a latency, a gas
price above which it cannot get included, and a strategy.  Its decision is vectorised
over all open offers of a protocol:

1. for every visible offer it considers taking the whole remaining amount or 1/2, 1/4, ...
   of it and keeps the size with the best expected profit = proceeds of selling the
   collateral on the venues (after impact, starting from the sales already planned this
   step) - cost of the debt paid - gas; this reproduces the many small clips of a thin
   market (Aave CRV, mechanisms.md 7.3; break-even rule of section 8.5);
2. it ranks the offers by expected profit per dollar paid and takes them in that order
   while the marginal profit of each (the collateral of all earlier ones sold first)
   passes the strategy's test, its capital lasts and its per-step transaction limit holds.

Strategies (``STRATEGIES``): ``default`` takes an offer as soon as expected profit
>= min_profit_usd (DESIGN.md section 6); ``margin`` waits until the profit is also at
least ``margin`` times the payment (on a Dutch auction: until the price has fallen that
much further); ``lowball`` is ``default`` on linear offers and opens English auctions
nobody has bid on at 0 DAI (agents/auction_bidders.py).  Seized collateral is sold at once
on the venue.  Capital locked in standing English-auction bids is not available for
anything else until the bid is outbid or dealt (``free_capital``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mesa
import numpy as np
import numpy.typing as npt

from cascadelab.spec import KeeperConfig
from mechanisms.base import Bids, Offers

if TYPE_CHECKING:
    from cascadelab.model import CascadeModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SIZE_FRACTIONS = np.array([1.0, 0.5, 0.25, 0.125, 0.0625, 1 / 32, 1 / 64])
"""Clip sizes a keeper considers, as fractions of what an offer allows."""

NO_OFFERS = np.zeros(0, dtype=np.int64)
NO_OFFERS.flags.writeable = False


def required_profit(cfg: KeeperConfig, cost_usd: FloatArray) -> FloatArray:
    """The ``default`` strategy: profit >= min_profit_usd."""
    return np.full_like(cost_usd, cfg.min_profit_usd)


def required_profit_with_margin(cfg: KeeperConfig, cost_usd: FloatArray) -> FloatArray:
    """The ``margin`` strategy: profit >= max(min_profit_usd, margin * cost)."""
    return np.maximum(cfg.min_profit_usd, cfg.margin * cost_usd)


STRATEGIES = {
    "default": required_profit,
    "margin": required_profit_with_margin,
    "lowball": required_profit,  # English auctions: opens at 0 DAI (agents/auction_bidders.OPENS_AT_ZERO)
}

MAX_COST = {
    required_profit: lambda cfg, value: value - cfg.min_profit_usd,
    required_profit_with_margin: lambda cfg, value: np.minimum(value - cfg.min_profit_usd, value / (1.0 + cfg.margin)),
}
"""Closed-form inverses of the profit rules: the largest cost c with value - c >= rule(c) (where c = 0
passes at all).  A rule without one is inverted by bisection (agents/auction_bidders.max_cost)."""


def stable_smallest(keys: FloatArray, count: int) -> IntArray:
    """``np.argsort(keys, kind="stable")[:count]`` without sorting the whole array.

    Partition finds the count-th smallest key; every key below it is in, and of the keys
    equal to it the first ones by index (as a stable sort orders ties), then only those
    are sorted.  ``keys`` must hold no NaN.
    """
    if keys.size <= count:
        return np.argsort(keys, kind="stable")
    kth = np.partition(keys, count - 1)[count - 1]
    below = np.flatnonzero(keys < kth)
    ties = np.flatnonzero(keys == kth)[: count - below.size]
    head = np.sort(np.concatenate((below, ties)))
    return head[np.argsort(keys[head], kind="stable")]


@dataclass
class Receipt:
    """Collateral a keeper received from one protocol this step, with the fills it came from."""

    protocol: int
    fill_ids: IntArray
    received: FloatArray  # (k, A) units


@dataclass
class KeeperBooks:
    """A keeper's cash flows (USD)."""

    spent: float = 0.0
    proceeds: float = 0.0
    gas: float = 0.0
    incentives: float = 0.0  # paid by protocols for upkeep calls (Maker bark/redo)
    fills: int = 0
    receipts: list[Receipt] = field(default_factory=list)


class Liquidator(mesa.Agent):
    """A keeper with capital, gas limits, latency and a profit rule."""

    def __init__(self, model: CascadeModel, index: int, config: KeeperConfig) -> None:
        super().__init__(model)
        self.index = index
        self.config = config
        self.rule = STRATEGIES[config.strategy]
        self.capital = config.capital_usd
        self.inventory = np.zeros(model.n_assets)
        self.books = KeeperBooks()
        self.fills_this_step = 0
        self.window_was_empty = False  # the last bid evaluated a window of the ranked list and none paid off
        self.needs_capital: float | None = None  # the last bid took nothing from a ranking: what its head costs

    # ----------------------------------------------------------------- step 6: decide and bid

    def evaluate(self, protocol: int, offers: Offers, idx: IntArray, remaining: FloatArray
                 ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Best clip size of each offer in ``idx`` at the current planned sales: (pay, received, cost, profit)."""
        m = self.model
        n_sizes = SIZE_FRACTIONS.size
        pay = remaining[idx][:, None] * SIZE_FRACTIONS  # (k, F)
        min_pay = offers.min_pay[idx]
        if min_pay.any():  # with no minimum every clip is allowed (pay > 0 here), so skip the masking pass
            pay = np.where(pay >= min_pay[:, None], pay, 0.0)
        recv = pay[:, :, None] * offers.receive_per_pay[idx][:, None, :]  # (k, F, A)
        cost = m.quote_debt_cost(protocol, pay)
        profit = m.quote_sales(recv)  # a fresh array: subtract in place, same order as proceeds - cost - gas
        profit -= cost
        profit -= m.gas.cost_usd(self.config.gas_units)
        profit[pay <= 0] = -np.inf
        best = np.arange(0, idx.size * n_sizes, n_sizes) + np.argmax(profit, axis=1)  # flat index of each row's best
        return (pay.ravel()[best], recv.reshape(-1, recv.shape[2])[best], cost.ravel()[best],
                profit.ravel()[best])

    def may_pay_off(self, protocol: int, offers: Offers, idx: IntArray, remaining: FloatArray) -> BoolArray:
        """Which offers in ``idx`` some clip of could meet the profit rule (the others need no evaluation).

        Any clip of offer i pays s * remaining_i (0 < s <= 1) and earns at most
        s * remaining_i * (receive_per_pay_i . net price - debt price) - gas (``model.trade_bounds``),
        and every strategy asks at least ``min_profit_usd``.  An offer whose bound stays below
        that by more than the rounding slack is never taken, so dropping it leaves the
        evaluation of the others, the ranking and the bids exactly as they were.
        """
        if idx.size == 0:
            return np.zeros(0, dtype=bool)
        net, debt_px, slack = self.model.trade_bounds(protocol)
        rem = remaining[idx]
        value = rem * (offers.receive_per_pay[idx] @ net)
        owed = rem * debt_px
        gas = self.model.gas.cost_usd(self.config.gas_units)
        best = np.maximum(value - owed, 0.0) - gas
        return ~(best + 1e-6 * (value + owed + gas) + slack < self.config.min_profit_usd)  # NaN or inf: keep

    def bid(self, protocol: int, offers: Offers, remaining: FloatArray, t: int,
            ranked: IntArray | None = None) -> tuple[Bids, IntArray | None]:
        """Bids on one protocol's offers; ``remaining`` (what earlier keepers left) is reduced in place.

        The first keeper of a configuration evaluates every visible offer and returns the head
        of those profitable on their own, best first (``ranked``; as long as every keeper of the
        round could reach: all their slots plus one window).  Later keepers with the same
        configuration face more planned sales and less remaining, so nothing outside that
        list can have become profitable: they re-evaluate only the head of it (a window of
        twice their transaction limit), which keeps a step's cost independent of the
        number of keepers.

        It returns the ranking later keepers should use: NO_OFFERS once nothing is left in it to take
        (remaining only falls within a round, so an identical keeper would take nothing either), and
        ``ranked`` as given (None from a first keeper) when this keeper had no free capital to look
        with: that says nothing about what an identical keeper with capital would find.

        A bid that takes nothing from a non-empty ranking leaves ``needs_capital``: the cost
        of the best-ranked offer's best clip (inf if that clip fails the profit rule).  Taking
        stops at the first offer that fails, so an identical keeper at the same remaining
        amounts and planned sales but with less free capital than that takes nothing either.
        """
        cfg = self.config
        m = self.model
        self.window_was_empty = False
        self.needs_capital = None
        capital = self.free_capital()
        if offers.size == 0 or not self.can_transact():  # the same for every keeper of this configuration
            return Bids.empty(), NO_OFFERS if ranked is None else ranked
        if capital <= 0:
            return Bids.empty(), ranked
        slots = self.slots()
        if ranked is None:
            idx = np.flatnonzero((remaining > offers.min_pay) & (t - offers.since >= cfg.latency_steps)
                                 & (remaining > 0))
            idx = idx[self.may_pay_off(protocol, offers, idx, remaining)]
        else:
            live = ranked[(remaining[ranked] > offers.min_pay[ranked]) & (remaining[ranked] > 0)]
            idx = live[: 2 * slots + 16]
        if idx.size == 0 or slots == 0:
            # a ranking with nothing left to take stays so for the rest of the round: NO_OFFERS tells the round
            return Bids.empty(), NO_OFFERS if ranked is None or idx.size == 0 else ranked
        pay, recv, cost, profit = self.evaluate(protocol, offers, idx, remaining)
        ok = np.flatnonzero(profit >= self.rule(cfg, cost))
        self.window_was_empty = ranked is not None and ok.size == 0  # independent of this keeper's capital
        keys = -profit[ok] / np.maximum(cost[ok], 1e-12)
        if ranked is None:
            # only the head of the ranking is ever read: this keeper takes <= its slots, and each later
            # keeper of the round reads a window of 2 * slots + 16 past what earlier ones took
            order = ok[stable_smallest(keys, (len(m.keepers) + 2) * cfg.max_fills_per_step + 16)]
            ranked = idx[order]
        else:
            order = ok[np.argsort(keys, kind="stable")]
        if order.size == 0:
            return Bids.empty(), ranked
        order = order[:slots]
        # marginal proceeds when all chosen offers' collateral is sold in sequence
        total = m.quote_sales(np.cumsum(recv[order], axis=0)[:, None, :])[:, 0]
        marginal = total.copy()  # first differences of [0, total...], bit for bit
        marginal[1:] -= total[:-1]
        cost = cost[order]
        pays_off = marginal - cost - m.gas.cost_usd(cfg.gas_units) >= self.rule(cfg, cost)
        take = pays_off & (np.cumsum(cost) <= capital)
        n_take = take.size if take.all() else int(np.argmin(take))  # up to the first failure
        if n_take == 0:
            self.needs_capital = float(cost[0]) if pays_off[0] else math.inf
            return Bids.empty(), ranked
        chosen = order[:n_take]
        offer_idx = idx[chosen]
        remaining[offer_idx] -= pay[chosen]
        self.fills_this_step += chosen.size
        m.plan_sales(recv[chosen].sum(axis=0))
        return Bids(offer=offer_idx, taker=np.full(chosen.size, self.index, dtype=np.int64), pay=pay[chosen]), ranked

    def new_step(self) -> None:
        self.fills_this_step = 0

    def slots(self) -> int:
        """Transactions this keeper may still send this step."""
        return max(self.config.max_fills_per_step - self.fills_this_step, 0)

    def can_transact(self) -> bool:
        """Whether this keeper can get a transaction included at the current gas price."""
        return self.model.gas.gwei <= self.config.max_gas_gwei

    def free_capital(self) -> float:
        """Capital minus what its standing English-auction bids lock (valued at the debt asset's market price)."""
        m = self.model
        if not m.lockers:
            return self.capital
        locked = [(p, units) for p, mech in m.lockers if (units := mech.committed(self.index)) > 0]
        if not locked:
            return self.capital
        px = m.market_px_ext()
        return self.capital - sum(units * px[m.book.debt_asset[p]] for p, units in locked)

    def spend_gas(self, usd: float) -> None:
        """Gas of transactions that move no collateral (English bids, won or not)."""
        self.capital -= usd
        self.books.gas += usd

    # ----------------------------------------------------------------- step 7: settle

    def receive(self, protocol: int, fill_ids: IntArray, received: FloatArray, cost_usd: float,
                gas_usd: float, incentive_usd: float = 0.0) -> None:
        """Book collateral received from settled fills; capital is locked until it is sold."""
        self.books.receipts.append(Receipt(protocol, fill_ids, received))
        self.inventory += received.sum(axis=0)
        self.capital -= cost_usd + gas_usd - incentive_usd
        self.books.incentives += incentive_usd
        self.books.spent += cost_usd
        self.books.gas += gas_usd
        self.books.fills += len(fill_ids)

    # ----------------------------------------------------------------- step 8: sell

    def sell(self) -> None:
        """Sell everything received this step on the venues, protocol by protocol."""
        if not self.books.receipts:
            return  # nothing received: inventory is as the last sale left it
        m = self.model
        for r in self.books.receipts:
            qty = r.received.sum(axis=0)
            for a in np.flatnonzero(qty > 0):
                proceeds = m.sell_collateral(a, float(qty[a]), r.protocol, r.fill_ids, r.received[:, a])
                self.capital += proceeds
                self.books.proceeds += proceeds
                self.inventory[a] -= qty[a]
        self.books.receipts.clear()
        self.inventory[np.abs(self.inventory) < 1e-12] = 0.0
