"""Gas price: what a keeper's transaction costs, spiking when markets move.

gwei_t = min(max_gwei, base_t * (1 + sensitivity * 100 * |ln(P_t / P_{t - window})|)), where
base_t is ``base_gwei`` or a scripted (step, gwei) path and P is the gas token's market price.
On Black Thursday the mean gas price rose about 6x (to ~80 gwei) as ETH fell ~30% in
hours (shared/reference/mechanisms.md 7.1); sensitivity ~0.17 reproduces that ratio.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from cascadelab.market.prices import knot_path
from cascadelab.spec import GasConfig

FloatArray = npt.NDArray[np.float64]


class GasMarket:
    """Gas price and gas cost in USD, step by step."""

    def __init__(self, config: GasConfig, steps: int, token_asset: int | None) -> None:
        self.config = config
        self.base = knot_path(config.path, steps) if config.path else np.full(steps + 1, config.base_gwei)
        self.token_asset = token_asset
        self.gwei = float(min(self.base[0], config.max_gwei))
        self.token_price = config.token_price_usd

    def update(self, t: int, market_history: FloatArray) -> float:
        """Set the gas price at step ``t`` from the token's recent move in ``market_history``."""
        cfg = self.config
        spike = 1.0
        if self.token_asset is not None:
            now = market_history[t, self.token_asset]
            then = market_history[max(t - cfg.window_steps, 0), self.token_asset]
            self.token_price = float(now)
            spike += cfg.sensitivity * 100.0 * abs(math.log(now / then))
        self.gwei = float(min(self.base[t] * spike, cfg.max_gwei))
        return self.gwei

    def cost_usd(self, gas_units: float) -> float:
        """USD cost of a transaction using ``gas_units`` at the current gas price."""
        return gas_units * self.gwei * 1e-9 * self.token_price
