"""What a worker does: build one run from (study, row, values, replicate, mechanism) and measure it.

Workers receive only this small, picklable description and build the model themselves,
so the same task gives bit-identical metrics on any backend, worker or machine: the run's
seed is ``run_seed(root, row, replicate)`` and does not depend on the mechanism (common
random numbers).  A run that raises is returned as a record with its error; numerical
warnings are recorded too (the same way on every backend, whatever its warning filters).
"""

from __future__ import annotations

import functools
import importlib
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascadelab.rng import run_seed

__all__ = ["Study", "Task", "run_chunk", "run_task", "seed_label"]

Task = tuple[int, int, int, tuple[float, ...]]
"""(row, replicate, mechanism index, design values of the row)."""


@dataclass(frozen=True)
class Study:
    """Everything a worker needs, and nothing else."""

    names: tuple[str, ...]
    """Parameter paths (dotted spec paths, or a function's argument names), in design column order."""
    integer: tuple[bool, ...]
    """Which parameters are integers in the spec (design values are rounded to the nearest)."""
    mechanisms: tuple[tuple[str, Mapping[str, Any]], ...]
    """(design name, dotted-path overrides) for every mechanism compared."""
    root_seed: int
    scenario: Mapping[str, Any] | None = None
    """The fully resolved scenario (with the sweep's fixed overrides) or None for a function model."""
    function: str = ""
    """'module:function' called as f(values: dict, seed: SeedSequence) -> dict of outputs."""
    common_seeds: bool = False
    """Every row uses the seeds of row 0 (the sweep's ``seeds = "common"``)."""

    def seed_key(self, row: int, replicate: int) -> tuple[int, int]:
        """The (row, replicate) spawn key of a run's seed; never depends on the mechanism."""
        return (0 if self.common_seeds else int(row)), int(replicate)


def seed_label(root: int, row: int, replicate: int) -> str:
    """How a run's seed is written in results: ``root:row:replicate`` = run_seed(root, row, replicate)."""
    return f"{root}:{row}:{replicate}"


def applied_values(study: Study, values: Sequence[float]) -> list[float | int]:
    return [int(round(v)) if is_int else float(v) for v, is_int in zip(values, study.integer, strict=True)]


@functools.lru_cache(maxsize=16)
def _function(entry: str) -> Callable[..., Mapping[str, float]]:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def _evaluate(study: Study, mechanism: int, values: list[float | int], seed: np.random.SeedSequence
              ) -> dict[str, float]:
    if study.function:
        return dict(_function(study.function)(dict(zip(study.names, values, strict=True)), seed))
    import cascadelab

    overrides = {**study.mechanisms[mechanism][1], **dict(zip(study.names, values, strict=True))}
    result = cascadelab.run(study.scenario, seed=seed, overrides=overrides)
    out = dict(result.metrics)
    for group in (result.per_protocol, result.per_asset):
        for owner, metrics in group.items():
            out.update({f"{owner}.{k}": v for k, v in metrics.items()})
    return out


def run_task(study: Study, row: int, replicate: int, mechanism: int, values: Sequence[float]) -> dict[str, Any]:
    """One run as a result record: keys, applied parameter values, outputs, error, warnings, wall time."""
    applied = applied_values(study, values)
    record: dict[str, Any] = {
        "row": int(row), "replicate": int(replicate), "mechanism": study.mechanisms[mechanism][0],
        "seed": seed_label(study.root_seed, *study.seed_key(row, replicate)),
    }
    record.update({name: float(v) for name, v in zip(study.names, applied, strict=True)})
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outputs = _evaluate(study, mechanism, applied, run_seed(study.root_seed, *study.seed_key(row, replicate)))
            bad = {k: v for k, v in outputs.items() if not math.isfinite(float(v))}
            if bad:
                raise FloatingPointError(f"non-finite outputs {bad}")
            record.update({k: float(v) for k, v in outputs.items()})
            record["error"] = None
        except Exception as exc:  # a failing run is data: recorded, and the sweep goes on
            record["error"] = f"{type(exc).__name__}: {exc}"
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    record["warnings"] = "; ".join(messages) if messages else None
    record["wall_seconds"] = time.perf_counter() - start
    return record


def run_chunk(study: Study, tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """A chunk of runs in one call, so that short runs are not dominated by scheduling overhead."""
    return [run_task(study, *task) for task in tasks]
