"""Exogenous fundamental price paths F_t, precomputed for a whole run from the ``prices`` stream.

Processes (per asset, DESIGN.md section 6):
- ``gbm``: dlog F = (mu - sigma^2/2) dt + sigma dW.
- ``jump_diffusion`` (Merton 1976): GBM plus Poisson(jump_rate dt) jumps per step with
  log sizes ~ Normal(jump_mean, jump_sd); the drift is compensated so E[F_t] = F_0 e^{mu t}.
- ``path``: piecewise-linear (step, price) knots, flat after the last knot, times
  mean-one lognormal noise exp(sigma W_t - sigma^2 t / 2) when sigma > 0 (scripted crashes, replays).
The Brownian increments of all assets are correlated by ``spec.correlation``; jumps are
independent across assets.  Draw order is fixed (all normals, then jumps asset by asset),
so a path depends only on the seed and the spec.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cascadelab.spec import Spec

FloatArray = npt.NDArray[np.float64]

SECONDS_PER_YEAR = 365.0 * 24 * 3600


def correlation_root(corr: FloatArray) -> FloatArray:
    """A matrix B with B B^T = corr (eigen-decomposition, so rho = +-1 works too)."""
    w, v = np.linalg.eigh(corr)
    return v * np.sqrt(np.clip(w, 0.0, None))


def knot_path(knots: tuple[tuple[float, float], ...], steps: int) -> FloatArray:
    """Linear interpolation of (step, value) knots on steps 0..steps, flat after the last knot."""
    xs = np.array([k[0] for k in knots], dtype=float)
    ys = np.array([k[1] for k in knots], dtype=float)
    return np.interp(np.arange(steps + 1, dtype=float), xs, ys)


def fundamental_paths(spec: Spec, rng: np.random.Generator) -> FloatArray:
    """Fundamental prices, shape (steps + 1, assets); row 0 holds the initial prices."""
    steps = spec.run.steps
    names = spec.asset_names
    dt = spec.run.dt_seconds / SECONDS_PER_YEAR
    z = rng.standard_normal((steps, len(names))) @ correlation_root(spec.correlation_matrix()).T
    out = np.empty((steps + 1, len(names)))
    for a, name in enumerate(names):
        cfg = spec.assets[name]
        sigma = cfg.sigma
        drift = (cfg.mu - 0.5 * sigma**2) * dt
        incr = drift + sigma * np.sqrt(dt) * z[:, a]
        if cfg.process == "jump_diffusion" and cfg.jump_rate > 0:
            counts = rng.poisson(cfg.jump_rate * dt, steps)
            sizes = cfg.jump_mean * counts + cfg.jump_sd * np.sqrt(counts) * rng.standard_normal(steps)
            kappa = np.exp(cfg.jump_mean + 0.5 * cfg.jump_sd**2) - 1.0
            incr = incr + sizes - cfg.jump_rate * kappa * dt
        log_rel = np.concatenate([[0.0], np.cumsum(incr)])
        if cfg.process == "path":
            noise = log_rel - cfg.mu * dt * np.arange(steps + 1)  # path: no drift beyond the knots
            out[:, a] = knot_path(cfg.path, steps) * np.exp(noise)
        else:
            out[:, a] = cfg.price * np.exp(log_rel)
    return out
