"""Backstop agents: a protocol's pool (what it does with collateral it holds) and its depositors.

A :class:`Backstop` acts in step 8 (DESIGN.md section 4) for a protocol whose mechanism is
``backstop_pool``.  First its :class:`Depositor` agents (Liquity) decide whether to leave:
a depositor is stressed once the protocol's collateral oracle price is ``withdraw_drop``
below where it started, and a stressed depositor withdraws its deposit and its collateral
gains with probability ``withdraw_prob`` per step (draws from the run's ``backstop``
stream, so adding a backstop never shifts other agents' draws).  Depositors who leave take
their collateral with them (held outside the model).  Then the pool applies its sell
policy to the collateral it still holds: ``hold`` keeps it; ``twap`` sells ``sell_fraction``
of it per step on the venue, moving the price (impact source ``pool:<protocol>``), and
puts the proceeds back into the deposits (Liquity) or the reserves (Comet); ``storefront``
is the mechanism's own sale to keepers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

if TYPE_CHECKING:
    from cascadelab.model import CascadeModel
    from mechanisms.backstop_pool import BackstopPool, StabilityPool


class Depositor(mesa.Agent):
    """One Stability Pool depositor (its balance lives in the pool's arrays at ``index``)."""

    def __init__(self, model: CascadeModel, pool: StabilityPool, index: int) -> None:
        super().__init__(model)
        self.pool = pool
        self.index = index

    @property
    def balance(self) -> float:
        return float(self.pool.deposits[self.index])

    def decide(self, draw: float, probability: float) -> None:
        """Leave with everything when the draw falls under the stressed withdrawal probability."""
        if draw < probability and (self.balance > 0 or self.pool.gains[self.index].any()):
            self.pool.withdraw(self.index)


class Backstop(mesa.Agent):
    """A protocol's backstop pool: depositor exits under stress and its sell policy."""

    def __init__(self, model: CascadeModel, protocol: int, mechanism: BackstopPool) -> None:
        super().__init__(model)
        self.protocol = protocol
        self.mechanism = mechanism
        self.config = mechanism.config
        self.pool = mechanism.pool_for(model.book)
        self.depositors = ([Depositor(model, self.pool, j) for j in range(self.pool.deposits.size)]
                           if self.config.variant == "liquity" else [])
        self.markets = np.flatnonzero(model.book.lt[protocol] > 0)
        self.px0 = model.oracle_px[protocol, self.markets].copy()
        self.sold_usd = 0.0

    def stressed(self) -> bool:
        """The protocol's collateral oracle price is at least withdraw_drop below its start (any market)."""
        px = self.model.oracle_px[self.protocol, self.markets]
        return bool((1.0 - px / self.px0 >= self.config.withdraw_drop).any())

    def act(self) -> None:
        """Step 8: depositors may leave, then the pool sells per its policy."""
        m = self.model
        cfg = self.config
        if self.depositors and cfg.withdraw_prob > 0 and self.stressed():
            draws = m.streams.backstop.random(len(self.depositors))
            for d, u in zip(self.depositors, draws, strict=True):
                d.decide(float(u), cfg.withdraw_prob)
        if cfg.sell != "twap":
            return
        held = self.pool.held
        debt_px = m.market_px_ext()[m.book.debt_asset[self.protocol]]
        for a in np.flatnonzero(held > 0):
            qty = float(held[a] * cfg.sell_fraction)
            proceeds = m.sell_for_backstop(self.protocol, int(a), qty)
            self.sold_usd += proceeds
            self.pool.sold(int(a), qty, proceeds if cfg.variant == "comet" else proceeds / debt_px)
