"""Sensitivity sweeps (DESIGN.md sections 6, 7 and 9): spec -> SALib design -> runs -> Parquet store.

    from cascadelab.sweep import run_sweep, Store
    run_sweep("experiments/sweeps/mechanism_families.toml", "results/families", workers=2)
    Store.open("results/families").read_results()

Modules: ``spec`` (the sweep spec), ``designs`` (SALib samplers, grid), ``plan`` (validation
against the scenario, mechanisms as overrides), ``work`` (what a worker runs), ``backends``
(serial, processes, Dask), ``store`` (manifest and Parquet parts), ``runner`` (the loop),
``testfns`` (functions with known indices).
"""

from __future__ import annotations

from cascadelab.sweep.plan import Plan, build_plan
from cascadelab.sweep.runner import SweepSummary, plan_sweep, run_sweep
from cascadelab.sweep.spec import SweepConfig, load_sweep
from cascadelab.sweep.store import Store, StoreError

__all__ = ["Plan", "Store", "StoreError", "SweepConfig", "SweepSummary", "build_plan", "load_sweep",
           "plan_sweep", "run_sweep"]
