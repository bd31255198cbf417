"""Designs: the SALib problem of a sweep and its sample matrix, one explicit table of methods.

Each method pairs a sampler with the layout its analysis expects (rows per base sample), so
sampling and analysis can never disagree (e.g. on ``calc_second_order``).  The sampler's
seed is ``cascadelab.rng.sampler_seed(root)``, disjoint from every run's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascadelab.rng import sampler_seed
from cascadelab.sweep.spec import SweepConfig, transform

__all__ = ["DESIGNS", "Design", "block_size", "problem", "sample"]


def problem(cfg: SweepConfig) -> dict[str, Any]:
    """SALib's problem dict; names are the parameters' labels (their paths unless named)."""
    return {
        "num_vars": len(cfg.params),
        "names": [p.label for p in cfg.params],
        "bounds": [list(p.bounds) for p in cfg.params],
        "dists": [p.dist for p in cfg.params],
        "outputs": list(cfg.outputs),
    }


def _sobol(cfg: SweepConfig, rng: np.random.Generator) -> np.ndarray:
    from SALib.sample import sobol

    return sobol.sample(problem(cfg), cfg.n, calc_second_order=cfg.calc_second_order, scramble=True, seed=rng)


def _morris(cfg: SweepConfig, rng: np.random.Generator) -> np.ndarray:
    from SALib.sample import morris

    return morris.sample(problem(cfg), cfg.n, num_levels=cfg.levels, seed=rng)


def _fast(cfg: SweepConfig, rng: np.random.Generator) -> np.ndarray:
    from SALib.sample import fast_sampler

    return fast_sampler.sample(problem(cfg), cfg.n, M=cfg.fast_m, seed=rng)


def _latin(cfg: SweepConfig, rng: np.random.Generator) -> np.ndarray:
    from SALib.sample import latin

    return latin.sample(problem(cfg), cfg.n, seed=rng)


def _grid(cfg: SweepConfig, rng: np.random.Generator) -> np.ndarray:
    """Full factorial: uniform and log-uniform axes include their bounds; other dists use quantiles (i+1/2)/n."""
    axes = []
    for p in cfg.params:
        if p.dist in ("unif", "logunif"):
            u = np.linspace(0.0, 1.0, cfg.n)
        else:
            u = (np.arange(cfg.n) + 0.5) / cfg.n
        axes.append(transform(u[:, None], [p])[:, 0])
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.column_stack([m.ravel() for m in mesh])


@dataclass(frozen=True)
class Design:
    """A sampler and the block structure of its rows (what must be dropped together if a run fails)."""

    sample: Callable[[SweepConfig, np.random.Generator], np.ndarray]
    block: Callable[[SweepConfig], int]
    """Rows that belong together in the analysis: Saltelli's (2D+2) or (D+2), a Morris trajectory (D+1), else 1."""


def _sobol_block(cfg: SweepConfig) -> int:
    d = len(cfg.params)
    return 2 * d + 2 if cfg.calc_second_order else d + 2


DESIGNS: dict[str, Design] = {
    "sobol": Design(_sobol, _sobol_block),
    "morris": Design(_morris, lambda cfg: len(cfg.params) + 1),
    "fast": Design(_fast, lambda cfg: cfg.n),
    "latin": Design(_latin, lambda cfg: 1),
    "grid": Design(_grid, lambda cfg: 1),
}


def block_size(cfg: SweepConfig) -> int:
    return DESIGNS[cfg.method].block(cfg)


def sample(cfg: SweepConfig, root_seed: int) -> np.ndarray:
    """The design's sample matrix (rows x parameters), a pure function of the spec and the root seed."""
    rng = np.random.default_rng(sampler_seed(root_seed))
    x = np.ascontiguousarray(DESIGNS[cfg.method].sample(cfg, rng), dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(cfg.params):
        raise RuntimeError(f"{cfg.method} sampler returned shape {x.shape}")  # a SALib change, not user input
    return x
