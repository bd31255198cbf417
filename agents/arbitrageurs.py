"""Arbitrageurs: pull each venue's price back toward the fundamental (DESIGN.md step 2).

The displacement decays with the venue's half-life; with finite ``capital_usd_per_step``
the arbitrageur trades at most that notional per step, so recovery slows when the
displacement is large (limits to arbitrage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

if TYPE_CHECKING:
    from cascadelab.model import CascadeModel


class Arbitrageur(mesa.Agent):
    """Trades one venue back toward its fundamental price."""

    def __init__(self, model: CascadeModel, asset: int, capital_usd_per_step: float) -> None:
        super().__init__(model)
        self.asset = asset
        self.capital = capital_usd_per_step

    def act(self) -> None:
        m = self.model
        factor = m.venues[self.asset].recover(float(m.fundamental[m.t, self.asset]), self.capital)
        m.recorder.decay[m.t, self.asset] = factor
