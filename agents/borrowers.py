"""Borrower cohorts: one Mesa agent per cohort, acting on the index array of its positions.

A ``passive`` cohort never acts.  A ``reactive`` cohort watches its positions' health at
its protocol's oracle price; a position that has been below ``trigger_health`` for at
least ``latency_steps`` acts with probability ``probability`` per step and restores its
health to ``target_health`` by (DESIGN.md step 4):

- ``top_up``: adding collateral of its largest asset, paid from outside funds;
- ``repay``: repaying debt from outside funds;
- ``deleverage``: selling collateral on the venue and repaying with the proceeds, which
  moves the price like any other sale (source ``deleverage`` of its protocol).

Outside funds per position are capped at ``budget_frac`` of its initial collateral value.
Everything is vectorised over the cohort's positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np
import numpy.typing as npt

from cascadelab.health_band import HealthBand
from cascadelab.spec import BehaviourConfig
from mechanisms.base import BORROWER, Fills

if TYPE_CHECKING:
    from cascadelab.model import CascadeModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class BorrowerCohort(mesa.Agent):
    """A group of positions sharing one behaviour."""

    def __init__(self, model: CascadeModel, population: str, positions: IntArray,
                 behaviour: BehaviourConfig) -> None:
        super().__init__(model)
        self.population = population
        self.positions = positions
        self.behaviour = behaviour
        self.below_since = np.full(positions.size, -1, dtype=np.int64)
        # proves, while prices drift, which positions are below the trigger without evaluating their health
        self.band = HealthBand(model.book, np.unique(model.book.protocol[positions]), behaviour.trigger_health)
        px0 = model.market_px_ext()
        self.budget = behaviour.budget_frac * model.book.collateral_value(px0, positions)

    def react(self) -> None:
        """Step 4: eligible positions top up, repay or deleverage toward the target health."""
        b = self.behaviour
        if b.kind == "passive" or self.positions.size == 0:
            return
        m = self.model
        book, t = m.book, m.t
        pos = self.positions
        if not self.band.unchanged(m.oracle_px):
            self.band.reset(book.health_of(pos, m.oracle_px), m.oracle_px)
        elif not self.band.anyone_below:  # nobody below the trigger: what the full pass would find
            self.below_since.fill(-1)
            return
        below = self.band.below & (book.debt[pos] > 0) & ~book.locked[pos]  # hf < trigger, not while in an auction
        self.below_since[~below] = -1
        self.below_since[below & (self.below_since < 0)] = t
        ready = below & (t - self.below_since >= b.latency_steps)
        if not ready.any():
            return
        ready &= m.streams.agents.random(pos.size) < b.probability
        sel = np.flatnonzero(ready)
        if sel.size == 0:
            return
        p = book.protocol[pos[sel]]
        px = m.oracle_px[p]  # (k, A+1) oracle prices of each position's protocol
        A = book.n_assets
        coll = book.collateral[pos[sel]]
        lt = book.lt[p]
        weighted = np.einsum("ij,ij->i", coll * lt, px[:, :A])
        debt_px = px[np.arange(sel.size), book.debt_asset[p]]
        debt = book.debt[pos[sel]]
        gap = b.target_health * debt * debt_px - weighted  # weighted-collateral USD short of target
        asset = np.argmax(coll * px[:, :A], axis=1)
        a_px = px[np.arange(sel.size), asset]
        a_lt = lt[np.arange(sel.size), asset]
        if b.action == "top_up":
            usd = np.minimum(gap / a_lt, self.budget[sel])
            units = np.maximum(usd, 0.0) / a_px
            seized = np.zeros((sel.size, A))
            seized[np.arange(sel.size), asset] = -units
            self.budget[sel] -= np.maximum(usd, 0.0)
            fills = Fills.make(pos[sel], BORROWER, A, seized=seized)
        elif b.action == "repay":
            usd = np.minimum(gap / b.target_health, self.budget[sel])
            units = np.minimum(np.maximum(usd, 0.0) / debt_px, debt)
            self.budget[sel] -= units * debt_px
            fills = Fills.make(pos[sel], BORROWER, A, repaid=units)
        else:  # deleverage: sell s units so that (W - s LT P) = target (D Pd - s P)
            s = np.clip(gap / (a_px * (b.target_health - a_lt)), 0.0, coll[np.arange(sel.size), asset])
            fills = m.deleverage(pos[sel], asset, s)
        m.apply_borrower_fills(fills)
