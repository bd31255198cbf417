"""Noise traders: uninformed signed flow on one venue, Normal(0, volume_usd) USD per step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

if TYPE_CHECKING:
    from cascadelab.model import CascadeModel


class NoiseTrader(mesa.Agent):
    """Trades random signed USD volume on one venue each step (impact source ``noise``)."""

    def __init__(self, model: CascadeModel, asset: int, volume_usd: float) -> None:
        super().__init__(model)
        self.asset = asset
        self.volume_usd = volume_usd

    def trade(self) -> None:
        m = self.model
        usd = float(m.streams.agents.normal(0.0, self.volume_usd))
        units = m.venues[self.asset].trade_usd(usd, float(m.fundamental[m.t, self.asset]), m.sources.noise)
        m.noise_net_units[self.asset] += units
