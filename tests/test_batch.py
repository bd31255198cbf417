"""Replicates as a batch (cascadelab/batch.py) give the bits of the step-by-step engine.

``ReplicateBatch`` proves steps quiet and writes them into each model in bulk; any slip (a
wrong proof, a recorder row, a draw of the rng not made) changes a fingerprint of metrics,
fills, sales, timeseries or cascade here, against ``CascadeModel.run`` stepping every step.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cascadelab
from cascadelab import run_replicates
from cascadelab.batch import ReplicateBatch, batch_obstacles, exp_is_elementwise
from cascadelab.model import CascadeModel
from cascadelab.rng import run_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from check_identical import fingerprint  # noqa: E402
from reference_mesa import reference_spec  # noqa: E402

needs_batch = pytest.mark.skipif(not exp_is_elementwise(),
                                 reason="numpy's exp rounds arrays and scalars differently here: runs one by one")

CRASH = [[0, 2000.0], [60, 1500.0], [120, 1000.0], [200, 1200.0], [300, 1250.0]]


def small_spec(**changes: Any) -> dict[str, Any]:
    """The reference shape at 200 positions and 300 steps, with noise on the crash path."""
    spec = reference_spec(200, 300, crash=CRASH)
    spec["assets"]["ETH"]["sigma"] = 0.6
    for path, value in changes.items():
        node = spec
        *head, last = path.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return spec


def stepped(spec: cascadelab.Spec, seeds: list[int]) -> list[str]:
    return [fingerprint(CascadeModel(spec, run_seed(s)).run().result()) for s in seeds]


def model_state(m: CascadeModel) -> tuple[Any, ...]:
    """What a run leaves in its model besides its outputs: rng state, counters, venue, oracles, gas, keepers."""
    return (m.random.getstate(), m.t, m.steps, [(v.z, v.parts.tobytes()) for v in m.venues],
            [(o.price.tobytes(), o.obs_step.tobytes()) for o in (*m.oracles, *m.shadow_oracles)],
            m.gas.gwei, m.oracle_px.tobytes(), [(k.capital, k.inventory.tobytes()) for k in m.keepers])


VARIANTS = {
    "reference": {},
    "lagged_oracle_capital_min_profit": {"protocols.lender.oracle": {"kind": "instant", "lag_steps": 3},
                                         "liquidators.capital_usd": 2e5, "liquidators.min_profit_usd": 40.0},
    "two_keepers_two_cohorts_gas_path": {
        "liquidators.count": 2, "liquidators.max_fills_per_step": 5, "liquidators.gas_units": 400_000,
        "gas.path": [[0, 20.0], [150, 90.0], [300, 30.0]],
        "populations.other": {"protocol": "lender", "count": 50, "collateral_asset": "ETH",
                              "collateral_usd": {"dist": "lognormal", "median": 5_000.0, "sigma": 0.5},
                              "health": {"dist": "uniform", "low": 1.02, "high": 1.6}}},
    "aave_v3_preset_transient_venue": {
        "protocols.lender.mechanism": {"kind": "fixed_bonus"},
        "venues.ETH": {"kind": "transient_impact", "impact": "sqrt", "depth_usd": 4e6, "recovery_halflife_steps": 5}},
    "partial_two_protocols": {
        "protocols.other": {"mechanism": {"kind": "partial"}, "oracle": {"kind": "instant", "lag_steps": 1},
                            "markets": {"ETH": {"liquidation_threshold": 0.8}}},
        "populations.other": {"protocol": "other", "count": 120, "collateral_asset": "ETH",
                              "collateral_usd": {"dist": "lognormal", "median": 20_000.0, "sigma": 1.0},
                              "health": {"dist": "uniform", "low": 1.05, "high": 2.0}}},
}


@needs_batch
@pytest.mark.parametrize("name", VARIANTS)
def test_batch_equals_stepping_every_step(name: str) -> None:
    spec = cascadelab.load_spec(small_spec(**VARIANTS[name]))
    assert batch_obstacles(spec) == []
    seeds = [1, 2, 3]
    batch = ReplicateBatch(spec, [run_seed(s) for s in seeds])
    results = batch.run()
    models = [CascadeModel(spec, run_seed(s)).run() for s in seeds]
    assert [fingerprint(r) for r in results] == [fingerprint(m.result()) for m in models]
    assert [model_state(m) for m in batch.models] == [model_state(m) for m in models]
    assert all(r.metrics["liquidation_count"] > 0 for r in results)  # a cascade to get right, not an idle run
    assert all(0 < n < spec.run.steps for n in batch.real_steps)  # both paths ran


def test_run_and_run_replicates_are_the_batch_and_equal_to_stepping() -> None:
    spec = cascadelab.load_spec(small_spec())
    expected = stepped(spec, [4, 5])
    assert [fingerprint(r) for r in run_replicates(spec, [4, 5])] == expected
    assert [fingerprint(cascadelab.run(spec, seed=s)) for s in (4, 5)] == expected
    assert fingerprint(cascadelab.run_replicates(spec, [5])[0]) == expected[1]


def test_counterfactual_run_equals_stepping() -> None:
    spec = cascadelab.load_spec(small_spec())
    fast = cascadelab.run(spec, seed=6, counterfactual=True)
    slow = CascadeModel(spec, run_seed(6)).run().result()
    slow.add_counterfactual(CascadeModel(spec, run_seed(6), feedback=False).run().result())
    assert fast.metrics == slow.metrics and fast.counterfactual == slow.counterfactual


def test_a_machine_whose_exp_rounds_arrays_differently_runs_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import cascadelab.batch as batch

    monkeypatch.setattr(batch, "exp_is_elementwise", lambda: False)
    spec = cascadelab.load_spec(small_spec())
    assert batch_obstacles(spec) == ["numpy's exp giving arrays the bits it gives scalars (on this machine)"]
    assert [fingerprint(r) for r in run_replicates(spec, [1])] == stepped(spec, [1])


def test_unsupported_specs_say_why_and_run_one_by_one() -> None:
    default = cascadelab.load_spec(None)
    obstacles = batch_obstacles(default)
    assert "instant oracles (any lag)" in obstacles and "passive borrowers" in obstacles
    with pytest.raises(ValueError, match="instant oracles"):
        ReplicateBatch(default, [run_seed(0)])
    spec = cascadelab.load_spec(small_spec(**{"noise.ETH": {"volume_usd": 1e5}}))
    assert "no noise traders" in batch_obstacles(spec) and "passive borrowers" not in batch_obstacles(spec)
    assert [fingerprint(r) for r in run_replicates(spec, [1])] == stepped(spec, [1])
    with pytest.raises(ValueError, match="at least one seed"):
        run_replicates(spec, [])


@settings(max_examples=12)
@given(bonus=st.floats(0.02, 0.15), close_factor=st.floats(0.2, 1.0), lag=st.integers(0, 6),
       depth=st.floats(2e6, 6e7), halflife=st.floats(1.0, 60.0), capital=st.floats(1e4, 1e7),
       min_profit=st.floats(0.0, 200.0), sigma=st.floats(0.0, 1.0))
def test_batch_equals_stepping_for_any_parameters(bonus: float, close_factor: float, lag: int, depth: float,
                                                  halflife: float, capital: float, min_profit: float,
                                                  sigma: float) -> None:
    raw = small_spec(**{
        "protocols.lender.mechanism": {"kind": "fixed_bonus", "preset": "textbook", "bonus": bonus,
                                       "close_factor": close_factor},
        "protocols.lender.oracle": {"kind": "instant", "lag_steps": lag},
        "venues.ETH.depth_usd": depth, "venues.ETH.recovery_halflife_steps": halflife,
        "liquidators.capital_usd": capital, "liquidators.min_profit_usd": min_profit, "assets.ETH.sigma": sigma,
        "run.steps": 200,
    })
    spec = cascadelab.load_spec(raw)
    results = run_replicates(spec, [11, 12])
    assert [fingerprint(r) for r in results] == stepped(spec, [11, 12])
    assert all(np.isfinite(r.metrics["bad_debt_usd"]) for r in results)


@needs_batch
def test_benchmark_times_the_batch_against_stepping_on_the_same_replicates() -> None:
    """benchmarks/run.py table 5: both sides run the same seeds and must give the same metrics."""
    from run import measure

    task = {"scenario": "reference", "positions": 30, "steps": 300, "replicates": 3}
    stepped_run, batch_run = measure({**task, "engine": "stepping"}), measure({**task, "engine": "batch"})
    assert stepped_run["obstacles"] == batch_run["obstacles"] == []
    assert stepped_run["digest"] == batch_run["digest"] and stepped_run["liquidations"] > 0
    assert stepped_run["cpu_seconds"] > 0 and batch_run["cpu_seconds"] > 0
