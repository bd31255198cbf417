"""Whole runs: determinism, seeds, invariants and the default scenario's cascade."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cascadelab
from cascadelab.cli import main

SHORT = {"run.steps": 240}


@pytest.fixture(scope="module")
def default_short() -> cascadelab.RunResult:
    return cascadelab.run(None, overrides=SHORT)


def test_same_spec_and_seed_give_identical_results(default_short: cascadelab.RunResult) -> None:
    again = cascadelab.run(None, overrides=SHORT)
    assert again.metrics == default_short.metrics
    pd.testing.assert_frame_equal(again.fills, default_short.fills)
    pd.testing.assert_frame_equal(again.timeseries, default_short.timeseries)


def test_another_seed_gives_another_run(default_short: cascadelab.RunResult) -> None:
    other = cascadelab.run(None, seed=8, overrides=SHORT)
    assert other.metrics != default_short.metrics
    assert not np.allclose(other.timeseries["fundamental_ETH"], default_short.timeseries["fundamental_ETH"])


def test_outputs_are_finite_and_conserved(default_short: cascadelab.RunResult) -> None:
    """No NaN or inf anywhere; conservation checked at run end is tight."""
    r = default_short
    assert all(np.isfinite(v) for v in r.metrics.values())
    numeric = r.timeseries.select_dtypes("number")
    assert np.isfinite(numeric.to_numpy()).all()
    assert np.isfinite(r.fills.select_dtypes("number").to_numpy()).all()
    assert max(r.checks.values()) < 1e-9


def test_default_scenario_shows_a_cascade(default_short: cascadelab.RunResult) -> None:
    """Liquidation sales push the market below the fundamental and liquidations follow."""
    m = default_short.metrics
    assert m["liquidation_count"] > 100
    assert m["max_price_impact"] > 0.01
    assert m["induced_liquidated_usd"] > 0


def test_liquidations_are_the_cascade_not_noise() -> None:
    """With venues that never move (kind none), nothing can be induced by sales."""
    r = cascadelab.run(None, overrides={**SHORT, "venues.ETH.kind": "none"})
    assert r.metrics["max_price_impact"] == 0.0
    assert r.metrics["induced_liquidated_usd"] == 0.0


def test_feedback_off_equals_venue_none_on_the_same_draws() -> None:
    """The counterfactual switch keeps the draws and removes impact."""
    a = cascadelab.run(None, overrides=SHORT, feedback=False)
    b = cascadelab.run(None, overrides={**SHORT, "venues.ETH.kind": "none"})
    assert a.metrics == b.metrics


def test_cli_json_and_out(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with a metrics key; --out writes the run's files."""
    assert main(["run", "--set", "run.steps=60", "--json", "--out", str(tmp_path / "r")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(cascadelab.METRICS) <= set(payload["metrics"])
    for name in ("timeseries.parquet", "fills.parquet", "metrics.json", "spec.json"):
        assert (tmp_path / "r" / name).is_file()
    spec = json.loads((tmp_path / "r" / "spec.json").read_text())
    assert cascadelab.load_spec(spec).run.steps == 60


def test_cli_summary_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--set", "run.steps=120"]) == 0
    out = capsys.readouterr().out
    assert "bad debt" in out and "per protocol" in out and "lender_a" in out


def test_a_finished_run_leaves_no_model_behind() -> None:
    """A sweep worker runs thousands of models: none may stay reachable once its result is dropped.

    (Mesa 3.3's class-level agent-id counter kept every model alive; see model.release_agent_id_counter.)
    """
    import gc
    import weakref

    from cascadelab.model import CascadeModel
    from cascadelab.rng import run_seed
    from cascadelab.spec import load_spec

    spec = load_spec(overrides={"run.steps": 30})
    model = CascadeModel(spec, run_seed(7, 0, 0))
    result = model.run().result()
    assert result.metrics["liquidated_usd"] >= 0
    alive = weakref.ref(model)
    del model, result
    gc.collect()
    assert alive() is None
