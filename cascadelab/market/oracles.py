"""Oracles: the prices a protocol acts on, which may lag and skip the market price.

Kinds (DESIGN.md section 6), vectorised over assets:
- ``instant``: the market price ``lag_steps`` ago.
- ``deviation``: Chainlink-style push feed: the reported price is replaced by the (lagged)
  market price when it deviates by more than ``threshold`` or ``heartbeat_steps`` have
  passed since the last update.  With ``lag_steps = 60`` at 60 s steps and a 60-step
  heartbeat this is also Maker's OSM (one-hour delay): shared/reference/mechanisms.md 3.1.
- ``twap``: the mean market price over the last ``window_steps`` (lagged).
``obs_step`` records which step's market price each reported price reflects, so a
liquidation can be traced back to the trades that moved that price.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cascadelab.spec import OracleConfig

FloatArray = npt.NDArray[np.float64]


class Oracle:
    """One protocol's oracle over all assets."""

    def __init__(self, config: OracleConfig, observed: FloatArray) -> None:
        """``observed`` is the (steps + 1, A) array of market prices as seen at each step (filled as the run goes)."""
        self.config = config
        self.observed = observed
        self.price = observed[0].copy()
        self.last_update = np.zeros(observed.shape[1], dtype=np.int64)
        self.obs_step = np.zeros(observed.shape[1], dtype=np.int64)

    def update(self, t: int) -> FloatArray:
        """Advance to step ``t`` (``observed[: t + 1]`` must be filled); return the reported prices."""
        cfg = self.config
        src = max(t - cfg.lag_steps, 0)
        if cfg.kind == "instant":
            self.price = self.observed[src].copy()
            self.obs_step[:] = src
        elif cfg.kind == "deviation":
            candidate = self.observed[src]
            if self.price.size == 1 and self.price[0] != 0.0:  # one asset: the same IEEE operations on scalars
                c, p = float(candidate[0]), float(self.price[0])
                if abs(c / p - 1.0) > cfg.threshold or t - int(self.last_update[0]) >= cfg.heartbeat_steps:
                    self.price = candidate.copy()
                    self.last_update[0] = t
                    self.obs_step[0] = src
                return self.price
            move = np.abs(candidate / self.price - 1.0)
            due = (move > cfg.threshold) | (t - self.last_update >= cfg.heartbeat_steps)
            if due.any():
                self.price = np.where(due, candidate, self.price)
                self.last_update[due] = t
                self.obs_step[due] = src
        else:  # twap
            lo = max(src - cfg.window_steps + 1, 0)
            self.price = self.observed[lo: src + 1].mean(axis=0)
            self.obs_step[:] = src
        return self.price
