"""Sensitivity indices and the mechanism comparison, checked against known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.comparison import pareto_front, tail_stats
from analysis.sensitivity import analyze_sweep, load_sweep_data, noise_decomposition, write_analysis
from cascadelab.cli import main as cli
from cascadelab.sweep import run_sweep
from cascadelab.sweep.testfns import ishigami_indices
from tests.test_sweep import DEPTH, TROUGH, ishigami_sweep, scenario_sweep, write_sweep

INERT = {"path": "gas.token_price_usd", "name": "gas_token_price", "bounds": [1000.0, 3000.0]}
"""Unused when the gas token is a modelled asset (its market price is used), and keepers pay no gas here."""


def _index(analysis, mech: str, out: str, method: str, index: str) -> pd.DataFrame:  # noqa: ANN001
    t = analysis.tables["indices"]
    return t[(t["mechanism"] == mech) & (t["output"] == out) & (t["method"] == method)
             & (t["index"] == index)].set_index("parameter")


@pytest.fixture(scope="module")
def ishigami_sobol(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("ishigami") / "sobol"
    run_sweep(ishigami_sweep(n=1024), out, progress=False)
    return analyze_sweep(out, given_data=False)


def test_ishigami_indices_match_the_analytic_values(ishigami_sobol) -> None:  # noqa: ANN001
    """Harness check through the same runner and store (SALib's regression: atol 0.05).

    Analytic (testfns docstring): S1 = (0.3139, 0.4424, 0), ST = (0.5576, 0.4424, 0.2437), S13 = 0.2437.
    """
    exact = ishigami_indices()
    s1 = _index(ishigami_sobol, "baseline", "y", "sobol", "S1")
    st = _index(ishigami_sobol, "baseline", "y", "sobol", "ST")
    np.testing.assert_allclose(s1.loc[["x1", "x2", "x3"], "value"], exact["S1"], atol=0.05)
    np.testing.assert_allclose(st.loc[["x1", "x2", "x3"], "value"], exact["ST"], atol=0.05)
    s2 = ishigami_sobol.tables["s2"]
    s13 = s2[(s2["output"] == "y") & (s2["parameter"] == "x1") & (s2["other"] == "x3")]["value"].item()
    assert abs(s13 - exact["S13"][0]) < 0.1
    # x4 cannot affect y: its total index is 0 within its CI; x2 drives y and dominates it
    assert abs(st.loc["x4", "value"]) <= st.loc["x4", "conf"] + 1e-12
    assert st.loc["x2", "value"] - st.loc["x2", "conf"] > st.loc["x4", "value"] + st.loc["x4", "conf"]


def test_replicate_noise_is_separated(tmp_path: Path) -> None:
    """y_noisy = y + N(0, 1) from the run seed: the within-row share of its variance is 1 / (V + 1) = 0.067."""
    run_sweep(ishigami_sweep(n=64, replicates=4), tmp_path / "out", progress=False)
    a = analyze_sweep(tmp_path / "out", given_data=False)
    noise = a.tables["noise"].set_index("output")
    v = 7.0**2 / 8 + 0.1 * np.pi**4 / 5 + 0.1**2 * np.pi**8 / 18 + 0.5
    assert noise.loc["y", "noise_share"] == 0.0
    assert abs(noise.loc["y_noisy", "noise_share"] - 1 / (v + 1)) < 0.025
    assert noise.loc["y_noisy", "noise_share_of_mean"] < noise.loc["y_noisy", "noise_share"]


def test_noise_decomposition_by_hand() -> None:
    """Rows (1, 3) and (10, 14): within variances 2 and 8 (mean 5); 1, 3, 10, 14 have variance 110/3.

    Row means 2 and 12 have variance 50; with R = 2 the mean's seed part is 5/2/50 = 0.05.
    """
    d = noise_decomposition(np.array([[1.0, 3.0], [10.0, 14.0]]))
    assert d["within_var"] == 5.0 and d["total_var"] == pytest.approx(110 / 3, rel=1e-15)
    assert d["noise_share"] == pytest.approx(15 / 110, rel=1e-15) and d["noise_share_of_mean"] == 0.05


@pytest.fixture(scope="module")
def model_sweep(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The cascade model with a driver (trough price), liquidity and an inert input; two bonus designs."""
    tmp = tmp_path_factory.mktemp("model")
    spec = scenario_sweep(tmp, n=8, replicates=2, seeds="common", params=[TROUGH, DEPTH, INERT],
                          mechanisms=[{"name": "bonus_5", "kind": "fixed_bonus"},
                                      {"name": "bonus_15", "kind": "fixed_bonus",
                                       "params": {"bonus": 0.15, "close_factor": 1.0}}])
    run_sweep(spec, tmp / "out", progress=False)
    return analyze_sweep(tmp / "out", given_data=False)


def test_an_inert_input_has_no_effect_and_the_driver_dominates(model_sweep) -> None:  # noqa: ANN001
    for mech in ("bonus_5", "bonus_15"):
        st = _index(model_sweep, mech, "liquidated_usd", "sobol", "ST")
        assert abs(st.loc["gas_token_price", "value"]) <= st.loc["gas_token_price", "conf"] + 1e-12
        assert st.loc["gas_token_price", "value"] == 0.0  # common seeds: the runs are bit-identical
        driver = st.loc["trough", "value"] - st.loc["trough", "conf"]
        assert driver > st.loc["gas_token_price", "value"] + st.loc["gas_token_price", "conf"]
        assert st.loc["trough", "value"] > 0.3


def test_paired_comparison_matches_the_runs(model_sweep) -> None:  # noqa: ANN001
    """Win rates and mean differences are computed on the same (row, replicate) draws."""
    res = model_sweep.data.results
    wide = res.pivot_table(index=["row", "replicate"], columns="mechanism", values="max_price_impact")
    d = wide["bonus_5"] - wide["bonus_15"]
    pair = model_sweep.tables["comparison_pairwise"]
    p = pair[pair["output"] == "max_price_impact"].iloc[0]
    assert (p["a"], p["b"]) == ("bonus_5", "bonus_15")
    assert p["a_lower"] == (d < 0).mean() and p["b_lower"] == (d > 0).mean()
    assert p["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)
    assert p["lo"] <= p["mean_diff"] <= p["hi"] and p["significant"] == (p["lo"] > 0 or p["hi"] < 0)
    summary = model_sweep.tables["comparison_summary"]
    mean5 = summary[(summary["output"] == "max_price_impact") & (summary["mechanism"] == "bonus_5")
                    & (summary["stat"] == "mean")]["value"].item()
    assert mean5 == pytest.approx(wide["bonus_5"].mean(), rel=1e-12)
    best = "bonus_5" if p["mean_diff"] < 0 else "bonus_15"
    line = next(s for s in model_sweep.answer if s.startswith("max_price_impact: lowest mean"))
    assert f"lowest mean under {best}" in line
    assert ("not significant" in line) != bool(p["significant"])
    assert any(s.startswith("Pareto front") for s in model_sweep.answer)


def test_tail_stats_by_hand() -> None:
    """0..99: mean 49.5, p95 = 94.05 and p99 = 98.01 (linear interpolation), ES95 = mean(95..99) = 97."""
    np.testing.assert_allclose(tail_stats(np.arange(100.0)), [49.5, 94.05, 98.01, 97.0])


def test_pareto_front() -> None:
    pts = pd.DataFrame({"x": [1.0, 2.0, 3.0, 2.0, 1.0], "y": [3.0, 2.0, 1.0, 3.0, 3.0]})
    assert pareto_front(pts, "x", "y").tolist() == [True, True, True, False, True]


def test_failed_runs_are_counted_and_whole_sobol_blocks_dropped(tmp_path: Path) -> None:
    run_sweep(ishigami_sweep(function="cascadelab.sweep.testfns:ishigami_failing", n=64), tmp_path / "out",
              progress=False)
    a = analyze_sweep(tmp_path / "out", given_data=False)
    data = a.data
    failed = data.results["error"].notna()
    f = a.tables["failures"].set_index("output").loc["y"]
    rows_missing = int(failed.sum())
    blocks_hit = data.results.loc[failed, "row"].floordiv(10).nunique()
    assert f["runs_failed"] == rows_missing and f["rows_missing"] == rows_missing
    assert f["blocks_used"] == 64 - blocks_hit and f"dropped {blocks_hit} of 64" in f["treatment"]
    st = _index(a, "baseline", "y", "sobol", "ST")
    assert np.isfinite(st["value"]).all()
    assert f"{rows_missing} failed" in a.answer[0]


def test_morris_and_fast_rank_ishigami(tmp_path: Path) -> None:
    run_sweep(ishigami_sweep(method="morris", n=40), tmp_path / "morris", progress=False)
    mu = _index(analyze_sweep(tmp_path / "morris", given_data=False), "baseline", "y", "morris", "mu_star")["value"]
    assert mu["x4"] == 0.0 and min(mu["x1"], mu["x2"]) > mu["x3"] > mu["x4"]
    run_sweep(ishigami_sweep(method="fast", n=1025), tmp_path / "fast", progress=False)
    fast = analyze_sweep(tmp_path / "fast", given_data=False)
    exact = ishigami_indices()
    np.testing.assert_allclose(_index(fast, "baseline", "y", "fast", "S1").loc[["x1", "x2", "x3"], "value"],
                               exact["S1"], atol=0.05)
    np.testing.assert_allclose(_index(fast, "baseline", "y", "fast", "ST").loc[["x1", "x2", "x3"], "value"],
                               exact["ST"], atol=0.05)


def test_given_data_methods_on_a_latin_design(tmp_path: Path) -> None:
    """delta and PAWN on a Latin hypercube of 500: x2 (S1 0.44) outranks the inert x4 on both."""
    run_sweep(ishigami_sweep(method="latin", n=500, outputs=["y"]), tmp_path / "out", progress=False)
    a = analyze_sweep(tmp_path / "out")
    delta = _index(a, "baseline", "y", "delta", "delta")
    pawn = _index(a, "baseline", "y", "pawn", "median")["value"]
    assert delta["value"].idxmax() == "x2" and pawn.idxmax() == "x2"
    assert delta.loc["x2", "value"] - delta.loc["x2", "conf"] > delta.loc["x4", "value"] + delta.loc["x4", "conf"]
    assert not (tmp_path / "out" / "analysis").exists()
    write_analysis(a)
    assert json.loads((tmp_path / "out" / "analysis" / "analysis.json").read_text())["runs"] == 500


def test_analyze_and_figures_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI path end to end on saved results: JSON, CSV tables, PNG + PDF figures (no creation date)."""
    spec = write_sweep(tmp_path / "s.toml", **scenario_sweep(
        tmp_path, n=4, mechanisms=["fixed_bonus", {"name": "b12", "kind": "fixed_bonus", "params": {"bonus": 0.12}}])
        ["sweep"])
    out = tmp_path / "out"
    assert cli(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli(["analyze", str(out), "--json", "--no-given-data"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"] == report["runs_expected"] == 32 and report["mechanisms"] == ["fixed_bonus", "b12"]
    assert any("bad_debt_usd: lowest mean" in line for line in report["answer"])
    for name in ("indices", "noise", "failures", "comparison_summary", "comparison_pairwise", "pareto"):
        assert (out / "analysis" / f"{name}.csv").is_file()
    assert cli(["figures", str(out)]) == 0
    for name in ("sobol_indices", "mechanism_comparison", "pareto_front", "output_vs_top_parameter"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
        assert b"CreationDate" not in (out / "figures" / f"{name}.pdf").read_bytes()
    assert len(load_sweep_data(out).results) == 32
    assert cli(["analyze", str(tmp_path / "nothing")]) == 2


def test_delta_on_a_degenerate_output_is_a_note_not_a_crash() -> None:
    """delta's kernel density fails when most values coincide (e.g. bad debt 0 in most runs): the
    analysis records why and keeps the other indices."""
    import numpy as np

    from analysis import sensitivity

    class Data:
        params = ["a", "b"]
        manifest = {"problem": {"num_vars": 2, "names": ["a", "b"], "bounds": [[0, 1], [0, 1]],
                                "dists": ["unif", "unif"]}}
        sweep = {"num_resamples": 20, "conf_level": 0.95}

        @staticmethod
        def seed(k: int) -> int:
            return k

    x = np.random.default_rng(0).random((60, 2))
    y = np.zeros(60)
    y[:2] = [1.0, 2.0]  # almost constant: the KDE covariance is singular on many resamples
    notes: list[str] = []
    rows = sensitivity._given_data(Data(), y, x, notes, "m/out", 0)
    assert any(r["method"] == "pawn" for r in rows)
    assert all(r["method"] != "delta" for r in rows) and any("delta not computed" in n for n in notes)
