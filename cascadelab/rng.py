"""The seed tree (DESIGN.md section 7): every random draw flows from one root seed.

A run's seed is ``SeedSequence(root, spawn_key=(row, replicate))``: it depends only on
where the run sits in a study, never on execution order, backend or worker count.
Each run splits into fixed, named sub-streams, so adding an agent never shifts the
price path, and every mechanism compared on the same (row, replicate) sees the same
prices and the same book (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STREAMS = ("prices", "book", "agents", "venues", "backstop")
"""Sub-stream names in their fixed order; append new ones at the end only."""


def run_seed(root: int, row: int = 0, replicate: int = 0) -> np.random.SeedSequence:
    """Seed of run (row, replicate) of a study whose root seed is ``root``."""
    return np.random.SeedSequence(int(root), spawn_key=(int(row), int(replicate)))


def sampler_seed(root: int) -> np.random.SeedSequence:
    """Seed for a study's design sampler, disjoint from every run's seed."""
    return np.random.SeedSequence(int(root), spawn_key=(2**32 - 1,))


@dataclass(frozen=True)
class Streams:
    """Independent generators for the parts of one run."""

    prices: np.random.Generator
    book: np.random.Generator
    agents: np.random.Generator
    venues: np.random.Generator
    backstop: np.random.Generator  # backstop depositors (appended: the other streams are unchanged)


def streams(seed: np.random.SeedSequence) -> Streams:
    """Split a run seed into its named sub-streams (children addressed by index, not by spawn order)."""
    children = [
        np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i)) for i in range(len(STREAMS))
    ]
    return Streams(*(np.random.default_rng(c) for c in children))
