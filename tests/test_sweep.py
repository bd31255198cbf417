"""Sweep specs, plans, designs, the store and the runner (serial backend)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascadelab.cli import main as cli
from cascadelab.rng import run_seed
from cascadelab.schema import SpecError
from cascadelab.sweep import Store, StoreError, build_plan, load_sweep, plan_sweep, run_sweep
from cascadelab.sweep.designs import sample

PI = math.pi

SMALL_SCENARIO = """
[run]
steps = 40
dt_seconds = 60
seed = 3

[assets.ETH]
process = "path"
sigma = 0.5
path = [[0, 2000.0], [20, 1400.0], [40, 1500.0]]

[venues.ETH]
kind = "constant_product"
depth_usd = 20_000_000
fee = 0.003
recovery_halflife_steps = 10

[gas]
token = "ETH"
token_price_usd = 2000.0

[protocols.lender]
mechanism = { kind = "fixed_bonus", bonus = 0.05, close_factor = 0.5 }
oracle = { kind = "instant" }
markets.ETH = { liquidation_threshold = 0.825 }

[populations.retail]
protocol = "lender"
count = 20
collateral_asset = "ETH"
collateral_usd = { dist = "lognormal", median = 50_000, sigma = 1.0, high = 2_000_000 }
health = { dist = "uniform", low = 1.02, high = 1.8 }

[liquidators]
count = 2
capital_usd = 5_000_000
gas_units = 0
"""
"""20 borrowers, a 30% fall in 20 steps on a constant-product pool; a run takes ~20 ms."""

TROUGH = {"path": "assets.ETH.path.1.1", "name": "trough", "bounds": [1100.0, 1800.0]}
DEPTH = {"path": "venues.ETH.depth_usd", "bounds": [2e6, 5e7], "dist": "logunif"}
ISHIGAMI_PARAMS = [{"path": f"x{i}", "bounds": [-PI, PI]} for i in (1, 2, 3)] + [{"path": "x4", "bounds": [0.0, 1.0]}]


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + "}"


def write_sweep(path: Path, **sweep: Any) -> Path:
    """A sweep TOML file with a [sweep] table of ``sweep`` (inline values)."""
    path.write_text("[sweep]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in sweep.items()))
    return path


def small_scenario(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL_SCENARIO)
    return p


def scenario_sweep(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    base = {"scenario": str(small_scenario(tmp_path)), "method": "sobol", "n": 4, "calc_second_order": False,
            "outputs": ["bad_debt_usd", "max_price_impact", "liquidated_usd"], "params": [TROUGH, DEPTH]}
    return {"sweep": {**base, **kw}}


def ishigami_sweep(**kw: Any) -> dict[str, Any]:
    base = {"function": "cascadelab.sweep.testfns:ishigami", "method": "sobol", "n": 64,
            "outputs": ["y", "y_noisy"], "params": ISHIGAMI_PARAMS}
    return {"sweep": {**base, **kw}}


# ----------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(("change", "where", "says"), [
    ({"n": 48}, "sweep.n", "power of two"),
    ({"method": "morris", "levels": 5}, "sweep.levels", "even"),
    ({"method": "fast", "n": 64}, "sweep.n", "N > 4 M^2 = 64"),
    ({"params": ISHIGAMI_PARAMS[:1]}, "sweep.params", "at least two parameters"),
    ({"params": [{"path": "x1", "bounds": [0.0, 1.0], "dist": "truncnorm"}, ISHIGAMI_PARAMS[1]]},
     "sweep.params.0.bounds", "[low, high, mean, sd]"),
    ({"params": [{"path": "x1", "bounds": [1.0, 0.0]}, ISHIGAMI_PARAMS[1]]}, "sweep.params.0.bounds", "lower bound"),
    ({"params": [ISHIGAMI_PARAMS[0], ISHIGAMI_PARAMS[0]]}, "sweep.params", "duplicate"),
    ({"method": "halton"}, "sweep.method", "one of 'sobol'"),
    ({"objectives": ["z"]}, "sweep.objectives.0", "not among outputs"),
    ({"scenario": "x.toml"}, "sweep.scenario", "exactly one"),
    ({"replicates": 0}, "sweep.replicates", "out of range"),
])
def test_spec_errors_name_the_key(change: dict[str, Any], where: str, says: str) -> None:
    """What SALib assumes but checks poorly fails up front, naming the key path."""
    with pytest.raises(SpecError) as err:
        load_sweep(ishigami_sweep(**change))
    assert err.value.path == where
    assert says in err.value.message


def test_scenario_paths_are_checked_before_any_run(tmp_path: Path) -> None:
    """A typo, a non-number, an unknown mechanism and an invalid midpoint fail at planning time."""
    cases = [
        ({"params": [TROUGH, {"path": "venues.ETH.depht_usd", "bounds": [1.0, 2.0]}]},
         "sweep.params.1.path", "not in the scenario; keys here: kind, depth_usd"),
        ({"params": [TROUGH, {"path": "protocols.lender_x.mechanism.bonus", "bounds": [0.0, 0.1]}]},
         "sweep.params.1.path", "lender_x"),
        ({"params": [TROUGH, {"path": "venues.ETH.kind", "bounds": [0.0, 1.0]}]},
         "sweep.params.1.path", "not a number"),
        ({"params": [TROUGH, {"path": "protocols.lender.mechanism.bonus", "bounds": [0.9, 1.5]}]},
         "sweep.params", "midpoint"),
        ({"mechanisms": ["fixed_bonus", "dutch_auctionx"]}, "sweep.mechanisms.1.kind", "registered: backstop_pool, dutch_auction"),
        ({"outputs": ["bad_debt"]}, "sweep.outputs.0", "unknown output"),
        ({"overrides": {"run.stepz": 3}}, "sweep.overrides: run.stepz", "unknown key"),
    ]
    for change, where, says in cases:
        cfg, base = load_sweep(scenario_sweep(tmp_path, **change))
        with pytest.raises(SpecError) as err:
            build_plan(cfg, base)
        assert err.value.path == where, change
        assert says in err.value.message, change


def test_cli_reports_a_bad_sweep_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_sweep(tmp_path / "bad.toml", **ishigami_sweep(n=100)["sweep"])
    assert cli(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sweep.n" in err and "power of two" in err
    assert not (tmp_path / "out").exists()


def test_scenario_path_is_relative_to_the_sweep_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small_scenario(tmp_path)
    spec = write_sweep(tmp_path / "s.toml", **{**scenario_sweep(tmp_path)["sweep"], "scenario": "small.toml"})
    monkeypatch.chdir("/")
    plan = plan_sweep(spec)
    assert plan.scenario_path == str((tmp_path / "small.toml").resolve())


def test_mechanism_entries_become_overrides(tmp_path: Path) -> None:
    """A bare id keeps a protocol's scenario parameters when it already uses that kind; params apply on top."""
    plan = plan_sweep(scenario_sweep(tmp_path, mechanisms=[
        "fixed_bonus", {"name": "aggressive", "kind": "fixed_bonus", "params": {"bonus": 0.12}},
        {"name": "deep_pool", "overrides": {"venues.ETH.depth_usd": 1e9}}]))
    mechs = dict(plan.study.mechanisms)
    kept = mechs["fixed_bonus"]["protocols.lender.mechanism"]
    assert kept["kind"] == "fixed_bonus" and kept["bonus"] == 0.05 and kept["close_factor"] == 0.5
    assert mechs["aggressive"]["protocols.lender.mechanism"]["bonus"] == 0.12
    assert mechs["deep_pool"] == {"venues.ETH.depth_usd": 1e9}
    assert plan.n_runs == plan.n_rows * 3


def test_integer_parameters_are_rounded(tmp_path: Path) -> None:
    plan = plan_sweep(scenario_sweep(tmp_path, params=[TROUGH, {"path": "liquidators.count", "bounds": [1, 5]}]))
    assert plan.study.integer == (False, True)
    from cascadelab.sweep.work import run_task

    rec = run_task(plan.study, 0, 0, 0, (1500.0, 2.6))
    assert rec["liquidators.count"] == 3.0 and rec["error"] is None


@pytest.mark.parametrize(("method", "extra", "rows"), [
    ("sobol", {"n": 8, "calc_second_order": True}, 8 * (2 * 4 + 2)),
    ("sobol", {"n": 8, "calc_second_order": False}, 8 * (4 + 2)),
    ("morris", {"n": 5}, 5 * (4 + 1)),
    ("fast", {"n": 65}, 65 * 4),
    ("latin", {"n": 30}, 30),
    ("grid", {"n": 3}, 3**4),
])
def test_designs_have_the_documented_size_and_are_seeded(method: str, extra: dict[str, Any], rows: int) -> None:
    cfg, _ = load_sweep(ishigami_sweep(method=method, **extra))
    x = sample(cfg, 11)
    assert x.shape == (rows, 4)
    assert np.array_equal(x, sample(cfg, 11))
    if method != "grid":
        assert not np.array_equal(x, sample(cfg, 12))
    assert (x[:, 3] >= 0).all() and (x[:, 3] <= 1).all()


def test_grid_includes_the_bounds() -> None:
    cfg, _ = load_sweep(ishigami_sweep(method="grid", n=3))
    x = sample(cfg, 0)
    assert sorted(set(x[:, 3])) == [0.0, 0.5, 1.0]


# ----------------------------------------------------------------------------- runner and store


def test_runs_use_the_seed_tree_and_common_random_numbers(tmp_path: Path) -> None:
    """Every mechanism of a (row, replicate) gets run_seed(root, row, replicate); seeds='common' drops the row."""
    spec = scenario_sweep(tmp_path, replicates=2, mechanisms=["fixed_bonus", {"name": "b12", "kind": "fixed_bonus",
                                                                             "params": {"bonus": 0.12}}])
    run_sweep(spec, tmp_path / "out", progress=False)
    res = Store.open(tmp_path / "out").read_results()
    assert len(res) == 4 * (2 + 2) * 2 * 2 and res["error"].isna().all()
    assert (res["seed"] == [f"3:{r}:{k}" for r, k in zip(res["row"], res["replicate"], strict=True)]).all()
    import cascadelab

    one = res[(res["row"] == 5) & (res["replicate"] == 1) & (res["mechanism"] == "b12")].iloc[0]
    direct = cascadelab.run(str(tmp_path / "small.toml"), seed=run_seed(3, 5, 1), overrides={
        "protocols.lender.mechanism": {"kind": "fixed_bonus", "bonus": 0.12, "close_factor": 0.5},
        "assets.ETH.path.1.1": one["assets.ETH.path.1.1"], "venues.ETH.depth_usd": one["venues.ETH.depth_usd"]})
    assert direct.metrics["bad_debt_usd"] == one["bad_debt_usd"]
    assert direct.metrics["max_price_impact"] == one["max_price_impact"]
    assert "lender.bad_debt_usd" in res.columns and "ETH.max_price_impact" in res.columns

    run_sweep(scenario_sweep(tmp_path, seeds="common"), tmp_path / "common", progress=False)
    common = Store.open(tmp_path / "common").read_results()
    assert set(common["seed"]) == {"3:0:0"}


def test_manifest_records_the_study(tmp_path: Path) -> None:
    run_sweep(ishigami_sweep(n=4, replicates=2), tmp_path / "out", progress=False)
    store = Store.open(tmp_path / "out")
    m = store.manifest()
    assert m["problem"]["names"] == ["x1", "x2", "x3", "x4"] and m["root_seed"] == 0
    assert m["n_runs"] == 4 * 10 * 2 and m["block_size"] == 10
    assert m["sample"]["shape"] == [40, 4] and np.array_equal(store.sample(), plan_sweep(ishigami_sweep(n=4)).x)
    assert m["versions"]["SALib"] and m["versions"]["numpy"] and m["format"] == "cascadelab-sweep/1"
    assert m["git"] is None or len(m["git"]["commit"]) == 40
    assert m["sweep"]["method"] == "sobol" and "fingerprint" in m


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    summary = run_sweep(ishigami_sweep(function="cascadelab.sweep.testfns:ishigami_failing", n=16),
                        tmp_path / "out", progress=False)
    res = Store.open(tmp_path / "out").read_results()
    bad = res["x1"] > 2.5
    assert summary.failed == int(bad.sum()) > 0 and len(res) == summary.total == 160
    assert res.loc[bad, "error"].str.startswith("ValueError: x1 = ").all()
    assert res.loc[bad, "y"].isna().all() and res.loc[~bad, "y"].notna().all()


def test_an_existing_directory_is_not_overwritten_and_resume_checks_the_spec(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sweep(ishigami_sweep(n=4), out, progress=False)
    with pytest.raises(StoreError, match="--resume"):
        run_sweep(ishigami_sweep(n=4), out, progress=False)
    with pytest.raises(StoreError, match="different sweep"):
        run_sweep(ishigami_sweep(n=8), out, resume=True, progress=False)
    again = run_sweep(ishigami_sweep(n=4, chunk_size=3), out, resume=True, progress=False)  # operational key: ok
    assert again.ran == 0 and again.skipped == 40
    manifest = json.loads((out / "manifest.json").read_text())  # as if another engine version had made the runs
    manifest["versions"]["cascadelab"] = "0.0.1"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="made by cascadelab 0.0.1"):
        run_sweep(ishigami_sweep(n=4), out, resume=True, progress=False)


def test_resume_after_a_partial_store_runs_only_what_is_missing(tmp_path: Path) -> None:
    """Drop some parts (as if killed), resume: the same rows as a clean sweep, none twice."""
    spec = ishigami_sweep(n=8, replicates=2, chunk_size=7)
    clean = run_sweep(spec, tmp_path / "clean", progress=False)
    run_sweep(spec, tmp_path / "cut", progress=False)
    store = Store.open(tmp_path / "cut")
    for part in store.parts()[::2]:
        part.unlink()
    (store.runs / ".part-x.parquet.1234.tmp").write_bytes(b"half a file")
    left = len(store.read_results())
    again = run_sweep(spec, tmp_path / "cut", resume=True, progress=False)
    assert again.ran == clean.total - left and again.skipped == left
    a = Store.open(tmp_path / "clean").read_results().drop(columns="wall_seconds")
    b = store.read_results(dedupe=False).drop(columns="wall_seconds")
    assert len(b) == clean.total == len(b.drop_duplicates(["row", "replicate", "mechanism"]))
    import pandas as pd

    pd.testing.assert_frame_equal(a, store.read_results().drop(columns="wall_seconds"))
    assert not list(store.runs.glob("*.tmp"))


def test_chunks_grow_with_short_runs(tmp_path: Path) -> None:
    """Adaptive chunking: after the first single-run chunk, short runs are batched."""
    run_sweep(ishigami_sweep(n=64), tmp_path / "out", progress=False)
    parts = Store.open(tmp_path / "out").parts()
    assert 2 <= len(parts) <= 20  # 640 runs of ~0.1 ms: a handful of chunks, not 640


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "experiments" / "sweeps").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_every_shipped_sweep_plans(path: Path) -> None:
    """Each sweep file in experiments/sweeps/ validates against its scenario and samples its design."""
    plan = plan_sweep(path)
    assert plan.n_runs > 0 and plan.x.shape[0] == plan.n_rows
