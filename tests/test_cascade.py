"""Cascade analysis on whole runs: no feedback means no cascade, contagion through a thin venue,
the counterfactual multiplier, and the internal consistency of generations, shares and the graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cascadelab
from cascadelab.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "experiments" / "scenarios"
CONTAGION = SCENARIOS / "contagion.toml"
SHORT = {"run.steps": 150}


@pytest.fixture(scope="module")
def contagion() -> cascadelab.RunResult:
    return cascadelab.counterfactual(CONTAGION, overrides=SHORT)


@pytest.fixture(scope="module")
def default_short() -> cascadelab.RunResult:
    return cascadelab.run(None, overrides={"run.steps": 720})


def test_no_price_impact_means_no_cascade() -> None:
    """Venue `none`: nothing induced, depth 0, contagion all zero, every liquidation generation 0."""
    r = cascadelab.run(CONTAGION, overrides={**SHORT, "venues.ALT.kind": "none"})
    assert r.metrics["liquidation_count"] > 100  # the fundamental fall alone liquidates the fragile lender
    assert r.metrics["induced_share"] == 0.0
    assert r.metrics["cascade_depth"] == 0.0
    assert r.metrics["cascade_only_share"] == 0.0
    assert all(v == 0.0 for row in r.contagion.values() for v in row.values())
    liq = r.fills[r.fills["kind"] == "liquidation"]
    assert (liq["generation"] == 0).all() and (liq["cause"] == "fundamental").all()
    assert r.cascade.empty


def test_thin_venue_carries_contagion_between_protocols(contagion: cascadelab.RunResult) -> None:
    """The sound lender's positions are healthy at the fundamental throughout (health >= 1.20 * 0.85),
    so all its liquidations are the fragile lender's doing (and a little its own)."""
    r = contagion
    sound = r.per_protocol["sound_lender"]
    assert sound["liquidated_usd"] > 1e6
    assert sound["induced_share"] == 1.0 and sound["cascade_only_share"] == 1.0
    assert r.contagion["fragile_lender"]["sound_lender"] > 0.5 * sound["liquidated_usd"]
    assert r.causes["fundamental"]["sound_lender"] == 0.0
    assert r.metrics["induced_share"] > 0.5 and r.metrics["cascade_depth"] >= 2


def test_counterfactual_multiplier(contagion: cascadelab.RunResult) -> None:
    """Same draws without feedback liquidate less: multiplier = liquidated / liquidated without feedback > 1."""
    m = contagion.metrics
    assert m["liquidated_usd_without_feedback"] == contagion.counterfactual["liquidated_usd"]
    assert m["cascade_multiplier"] == pytest.approx(m["liquidated_usd"] / m["liquidated_usd_without_feedback"])
    assert m["cascade_multiplier"] > 1.0
    assert contagion.counterfactual["cascade_depth"] == 0.0
    assert "counterfactual" in contagion.to_json_dict()


def test_multiplier_guard_without_liquidations() -> None:
    """Nothing liquidated either way: multiplier 1; only the counterfactual empty: no multiplier."""
    r = cascadelab.counterfactual(CONTAGION, overrides={**SHORT, "assets.ALT.path": [[0, 10.0], [150, 10.0]]})
    assert r.metrics["liquidated_usd"] == 0.0 and r.metrics["cascade_multiplier"] == 1.0
    fake = cascadelab.RunResult(**{**r.__dict__, "metrics": {**r.metrics, "liquidated_usd": 5.0}})
    fake.metrics.pop("cascade_multiplier")
    fake.add_counterfactual(r)
    assert "cascade_multiplier" not in fake.metrics and fake.metrics["liquidated_usd_without_feedback"] == 0.0


def test_shares_graph_and_generations_agree(default_short: cascadelab.RunResult) -> None:
    """Per liquidation: shares sum to 1; the graph's weights per child sum to 1 and give the same
    contagion; a child's parents are of earlier generations and one is of the generation just before."""
    r = default_short
    liq = r.fills[r.fills["kind"] == "liquidation"]
    shares = liq[[c for c in liq.columns if c.startswith("share_")]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    g = r.cascade
    np.testing.assert_allclose(g.groupby("child")["weight"].sum(), 1.0, rtol=1e-9)
    gen = r.fills.set_index("fill_id")["generation"]
    fill_edges = g[g["parent"] >= 0]
    assert (fill_edges["parent_generation"].to_numpy() == gen.loc[fill_edges["parent"]].to_numpy()).all()
    assert (fill_edges["parent_generation"].to_numpy() < gen.loc[fill_edges["child"]].to_numpy()).all()
    top = fill_edges.groupby("child")["parent_generation"].max()
    children = gen[(gen >= 1) & (r.fills.set_index("fill_id")["share_fundamental"] < 1)]
    assert (top.reindex(children.index).to_numpy() == children.to_numpy() - 1).all()
    assert r.metrics["cascade_depth"] == gen.max() == top.max() + 1
    # contagion from the graph equals contagion from the per-fill shares
    proto = r.fills.set_index("fill_id")["protocol"]
    usd = r.fills.set_index("fill_id")["seized_usd"]
    via_graph = (g.assign(usd=g["weight"] * usd.loc[g["child"]].to_numpy(), to=proto.loc[g["child"]].to_numpy())
                 .groupby(["source", "to"], observed=True)["usd"].sum())
    for a, row in r.contagion.items():
        for b, v in row.items():
            assert via_graph.get((f"liq:{a}", b), 0.0) == pytest.approx(v, rel=1e-9, abs=1e-6)


def test_oracle_observation_is_reconstructed_exactly(default_short: cascadelab.RunResult) -> None:
    """The displacement an oracle reported (log(O / F) at its observation step, constant product) equals
    the parts at that step: liq/delev parts of the previous step's end times this step's decay, plus noise."""
    ts = default_short.timeseries
    parts = ts[[c for c in ts.columns if c.startswith("z_ETH_")]]
    prev = parts.shift(1, fill_value=0.0).mul(ts["decay_ETH"], axis=0)
    noise = [c for c in parts.columns if c.endswith("_noise")]
    observed = prev.drop(columns=noise).sum(axis=1) + parts[noise].sum(axis=1)
    for proto in default_short.per_protocol:
        s = ts[f"oracle_step_{proto}_ETH"].to_numpy()
        want = np.log(ts[f"oracle_{proto}_ETH"].to_numpy() / ts["fundamental_ETH"].to_numpy()[s])
        np.testing.assert_allclose(observed.to_numpy()[s], want, atol=1e-12)


def test_cascade_only_positions_were_first_liquidated_by_the_cascade(default_short: cascadelab.RunResult) -> None:
    """A position never liquidatable at the fundamental had its first liquidation induced (its later
    ones may not be: a liquidation at a depressed price can leave it unhealthy at the fundamental)."""
    liq = default_short.fills[default_short.fills["kind"] == "liquidation"]
    first = liq.groupby("position").head(1)
    assert first.loc[first["cascade_only"], "induced"].all()
    assert (liq.groupby("position")["cascade_only"].nunique() == 1).all()  # a property of the position
    assert 0 < default_short.metrics["cascade_only_share"] < 1


def test_cli_json_has_contagion_and_cascade_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`run --json --counterfactual` prints contagion and per_protocol beside metrics; `cascade` draws
    every figure as PNG and PDF, byte-identical when drawn again."""
    out = tmp_path / "run"
    args = ["run", str(CONTAGION), "--set", "run.steps=90", "--set", "populations.fragile.count=300",
            "--set", "populations.sound.count=300", "--json", "--counterfactual", "--out", str(out)]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"metrics", "per_protocol", "per_asset", "contagion", "causes", "counterfactual"} <= set(payload)
    assert "cascade_multiplier" in payload["metrics"]
    assert set(payload["contagion"]) == {"fragile_lender", "sound_lender"}
    assert (out / "cascade.parquet").is_file()
    assert main(["cascade", str(out), "--out", str(tmp_path / "f1")]) == 0
    text = capsys.readouterr().out
    assert "contagion" in text and "most at risk" in text
    for name in ("price_paths", "generation_volume", "contagion", "lar"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "f1" / f"{name}.{ext}").stat().st_size > 5_000
    # drawn again from the saved run: the same bytes (no timestamps in PNG or PDF)
    from analysis import cascade_figures, style

    metrics = json.loads((out / "metrics.json").read_text())
    again = style.save(cascade_figures.plot_contagion(metrics["causes"], ["fragile_lender", "sound_lender"]),
                       tmp_path / "f2" / "contagion")
    for path in again:
        assert path.read_bytes() == (tmp_path / "f1" / path.name).read_bytes()
    ranking = pd.read_csv(tmp_path / "f1" / "lar_ranking.csv")
    assert set(ranking["kind"]) == {"asset", "protocol"}


def test_cascade_command_rejects_a_bad_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cascade", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["cascade", str(tmp_path / "empty")]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["eth_steth.toml", "eth_steth_depeg.toml", "contagion.toml"])
def test_shipped_scenarios_load(name: str) -> None:
    spec = cascadelab.load_spec(SCENARIOS / name)
    assert len(spec.protocols) >= 2
    if name.startswith("eth_steth"):
        assert spec.asset_names == ["ETH", "stETH"]
        assert all(set(p.markets) == {"ETH", "stETH"} for p in spec.protocols.values())
