"""cascadelab: a testbed for DeFi liquidation-mechanism design (leverage cascades, market impact, bad debt)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cascadelab.record import METRICS, RunResult
from cascadelab.rng import run_seed
from cascadelab.schema import SpecError
from cascadelab.spec import Spec, load_spec

__version__ = "0.1.1"

__all__ = ["METRICS", "RunResult", "Spec", "SpecError", "counterfactual", "load_spec", "run", "run_replicates",
           "__version__"]


def run(spec: str | Path | Mapping[str, Any] | Spec | None = None, seed: int | np.random.SeedSequence | None = None,
        overrides: Mapping[str, Any] | Iterable[str] | None = None, *, feedback: bool = True,
        counterfactual: bool = False) -> RunResult:
    """Run one scenario and return its RunResult.

    Args:
        spec: a TOML path, a spec dict, a Spec, or None for the built-in default scenario.
        seed: root seed (default: ``run.seed`` of the spec) or a ready SeedSequence (sweeps).
        overrides: dotted-path overrides, as a dict or ``PATH=VALUE`` strings.
        feedback: False switches endogenous price impact off (every venue behaves as ``none``),
            keeping the same draws: the counterfactual without cascade.
        counterfactual: also run the same spec and seed with ``feedback=False`` and add
            ``liquidated_usd_without_feedback``, ``bad_debt_usd_without_feedback`` and
            ``cascade_multiplier`` to the metrics (see :mod:`cascadelab.record`).
    """
    from cascadelab.batch import run_models

    resolved = load_spec(spec, overrides)
    seq = _seed_sequence(resolved, seed)
    # quiet steps advanced in bulk where the spec allows (cascadelab.batch): the same bits as CascadeModel.run
    result, = run_models(resolved, [seq], feedback=feedback)
    if counterfactual:
        result.add_counterfactual(run_models(resolved, [seq], feedback=False)[0])
    return result


def run_replicates(spec: str | Path | Mapping[str, Any] | Spec | None = None,
                   seeds: Iterable[int | np.random.SeedSequence] = (),
                   overrides: Mapping[str, Any] | Iterable[str] | None = None) -> list[RunResult]:
    """One RunResult per seed, equal bit for bit to ``run(spec, seed)`` for each; where the spec allows,
    the replicates' quiet steps are advanced together (:mod:`cascadelab.batch`)."""
    from cascadelab.batch import run_models

    resolved = load_spec(spec, overrides)
    sequences = [_seed_sequence(resolved, s) for s in seeds]
    if not sequences:
        raise ValueError("run_replicates needs at least one seed")
    return run_models(resolved, sequences)


def _seed_sequence(spec: Spec, seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """A run's SeedSequence: a ready one as it is, else the root seed's (default: ``run.seed`` of the spec)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return run_seed(spec.run.seed if seed is None else int(seed))


def counterfactual(spec: str | Path | Mapping[str, Any] | Spec | None = None,
                   seed: int | np.random.SeedSequence | None = None,
                   overrides: Mapping[str, Any] | Iterable[str] | None = None) -> RunResult:
    """``run(..., counterfactual=True)``: the run with feedback, plus its cascade multiplier."""
    return run(spec, seed, overrides, counterfactual=True)
