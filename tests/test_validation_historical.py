"""Replay scenarios, the priced debt asset they rely on, and the Black Thursday zero-bid figure.

The historical checks themselves run in tests/test_validation.py (one test per check);
here: every scenario states what it takes from the record and what it assumes, loads
(the auction ones with their mechanism swapped while it is not registered), and the
engine behaviour the replays depend on holds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cascadelab
from analysis import validation_figures as vf
from cascadelab.spec import read_toml
from cascadelab.validation import historical as h
from mechanisms.registry import REGISTRY


@pytest.mark.parametrize("name", h.replay_names(), ids=str)
def test_scenario_header_and_keys(name: str) -> None:
    """The header says what is from the record / literature, what is assumed and the check's tolerance;
    every key loads (a mechanism not registered yet is swapped for fixed_bonus to check the rest)."""
    path = h.scenario(name)
    header = path.read_text().split("[run]")[0]
    assert "ASSUMED" in header and "CHECK" in header
    assert "FROM THE RECORD" in header or "FROM THE LITERATURE" in header or "debt_market_deep.toml" in header
    raw = read_toml(path)
    for proto in raw["protocols"].values():
        if proto["mechanism"]["kind"] not in REGISTRY:
            proto["mechanism"] = {"kind": "fixed_bonus"}
    spec = cascadelab.load_spec(raw)
    n = sum(p.count for p in spec.populations.values()) + len(spec.positions)
    assert n <= 5000  # replays stay at thousands of positions at most


def test_debt_market_files_differ_only_in_the_stablecoin_venue() -> None:
    deep, inelastic = (read_toml(h.scenario(n)) for n in (h.DEEP, h.INELASTIC))
    assert deep["venues"]["DAI"]["depth_usd"] > 10 * inelastic["venues"]["DAI"]["depth_usd"]
    deep["venues"].pop("DAI")
    inelastic["venues"].pop("DAI")
    assert deep == inelastic


def test_black_thursday_files_differ_only_in_the_mechanism() -> None:
    english, dutch = (read_toml(h.scenario(n)) for n in (h.BT, h.BT_DUTCH))
    assert english["protocols"]["maker"].pop("mechanism")["kind"] == "english_auction"
    mech = dutch["protocols"]["maker"].pop("mechanism")
    assert mech["kind"] == "dutch_auction" and mech["curve"]["kind"] == "stairstep_exponential"
    assert set(mech) == {"kind", "buf", "chop", "tail", "cusp", "chip", "tip", "curve"}  # DESIGN.md section 6
    assert english == dutch


# ----------------------------------------------------------------------------- the priced debt asset


def _dai_spec(venue_depth: float, action: str = "deleverage") -> dict:
    """One vault with DAI debt on a constant-product DAI venue; ETH gaps 2000 -> 1500 at step 1 and the
    borrower (reactive, no latency, always acts) sells ETH to get back to health 1.5."""
    return {
        "run": {"steps": 3, "dt_seconds": 60, "seed": 1},
        "assets": {"ETH": {"process": "path", "path": [[0, 2000.0], [1, 1500.0], [3, 1500.0]]},
                   "DAI": {"process": "path", "path": [[0, 1.0], [3, 1.0]]}},
        "venues": {"ETH": {"kind": "none", "fee": 0.0},
                   "DAI": {"kind": "constant_product", "depth_usd": venue_depth, "fee": 0.0,
                           "recovery_halflife_steps": 1e12}},
        "protocols": {"cdp": {"mechanism": {"kind": "fixed_bonus"}, "oracle": {"kind": "instant"},
                              "debt_asset": "DAI", "markets": {"ETH": {"liquidation_threshold": 0.8}}}},
        "populations": {"b": {"protocol": "cdp", "count": 1, "collateral_asset": "ETH",
                              "collateral_usd": {"dist": "constant", "value": 200_000.0},
                              "health": {"dist": "constant", "value": 1.2},
                              "behaviour": {"kind": "reactive", "action": action, "trigger_health": 1.1,
                                            "target_health": 1.5, "probability": 1.0, "latency_steps": 0}}},
        "liquidators": {"count": 0},
    }


def test_deleveraging_buys_the_debt_asset_on_its_venue() -> None:
    """A borrower who sells collateral to repay DAI debt buys the DAI on its venue: the DAI price rises,
    the move is attributed to the protocol's deleveraging, and the debt repaid is what the proceeds buy
    on the CPMM: q = usd x / (L sqrt(P) + usd) (x = L/sqrt(P) DAI in the pool, no fee)."""
    r = cascadelab.run(_dai_spec(2e6))
    fill = r.fills[r.fills["kind"] == "borrower"].iloc[0]
    proceeds = fill["seized_ETH"] * 1500.0
    liquidity = 2e6 / 2.0
    x = liquidity
    assert fill["repaid"] == pytest.approx(proceeds * x / (liquidity + proceeds), rel=1e-9)
    ts = r.timeseries
    assert ts.loc[1, "market_DAI"] > 1.0
    assert ts.loc[1, "z_DAI_delev:cdp"] == pytest.approx(ts.loc[1, "z_DAI"]) and ts.loc[1, "z_DAI"] > 0


def test_a_deeper_debt_market_repays_more() -> None:
    thin = cascadelab.run(_dai_spec(2e6)).fills
    deep = cascadelab.run(_dai_spec(2e9)).fills
    repaid = [f.loc[f["kind"] == "borrower", "repaid"].iloc[0] for f in (thin, deep)]
    assert repaid[0] < repaid[1]


def test_keepers_price_in_each_others_debt_purchases() -> None:
    """Ten keepers buying CRV on a thin $40M venue in the same block: each prices the CRV the earlier
    ones committed to buy, so together they do not overpay (liquidator PnL stays positive; without
    this, the same run lost ~$14M because every keeper quoted the untouched pool)."""
    r = cascadelab.run(h.scenario(h.CRV), overrides={"venues.CRV.depth_usd": 4e7})
    assert r.metrics["liquidation_count"] > 10
    assert r.metrics["liquidator_pnl_usd"] > 0


# ----------------------------------------------------------------------------- the zero-bid figure


def _synthetic_auction_run() -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Ten settled auctions of 50 ETH over three hours (dt 60 s) at market 100: four won for 0 DAI
    (hours 0 and 1), the others at 80 DAI/ETH, with the bids each drew."""
    steps = np.array([10, 20, 30, 70, 80, 130, 140, 150, 160, 170])
    paid = np.array([0.0, 4000, 4000, 0, 0, 4000, 0, 4000, 4000, 4000])
    fills = pd.DataFrame({
        "step": steps, "kind": pd.Categorical(["liquidation"] * 10), "protocol": ["maker"] * 10,
        "seized_ETH": np.full(10, 50.0), "paid_usd": paid, "bids": np.where(paid > 0, 4, 1),
    })
    ts = pd.DataFrame({"step": np.arange(181), "market_ETH": np.full(181, 100.0),
                       "oracle_maker_ETH": np.full(181, 110.0), "gas_gwei": np.full(181, 80.0)})
    return fills, ts, 60.0


def test_auction_fill_frame_and_hourly_counts() -> None:
    fills, ts, dt = _synthetic_auction_run()
    frame = h.auction_fill_frame(fills, ts, "ETH", dt)
    assert frame["clearing_price"].tolist() == [0, 80, 80, 0, 0, 80, 0, 80, 80, 80]
    assert frame["zero_bid"].sum() == 4 and frame["ratio"].max() == pytest.approx(0.8)
    hourly = vf.hourly_auctions(frame)
    assert hourly["settled"].tolist() == [3, 2, 5]  # steps < 60, 60-119, 120-179
    assert hourly["zero_bid"].tolist() == [1, 2, 1]
    assert hourly["bids"].tolist() == [9, 2, 17]


def test_zero_bid_figure_from_a_saved_run(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """The figure works from a run directory's files (as `cascadelab run --out` writes them)."""
    fills, ts, dt = _synthetic_auction_run()
    run = tmp_path / "run"
    run.mkdir()
    fills.to_parquet(run / "fills.parquet")
    ts.to_parquet(run / "timeseries.parquet")
    (run / "spec.json").write_text(json.dumps({"run": {"dt_seconds": dt}}))
    out = tmp_path / "bt.png"
    assert vf.main([str(run), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert "10 auctions settled, 4 at or near zero (40.0%)" in capsys.readouterr().out


def test_zero_bid_figure_panels() -> None:
    """With bid counts: prices, auctions per hour, bids per auction, gas; without them the bids panel goes."""
    fills, ts, dt = _synthetic_auction_run()
    frame = h.auction_fill_frame(fills, ts, "ETH", dt)
    fig = vf.plot_zero_bids(frame, ts, "ETH", dt)
    assert [a.get_ylabel() for a in fig.axes] == ["USD per ETH", "auctions settled\nper hour", "bids per auction",
                                                  "gas (gwei)"]
    assert "4 of 10 settled auctions (40%) won at or near zero" in fig.axes[0].get_title()
    vf.plt.close(fig)
    fig = vf.plot_zero_bids(h.auction_fill_frame(fills.drop(columns="bids"), ts, "ETH", dt), ts, "ETH", dt)
    assert [a.get_ylabel() for a in fig.axes][2:] == ["gas (gwei)"]
    vf.plt.close(fig)


def test_keeper_groups_and_who_can_bid() -> None:
    """From a resolved spec: 10 keepers capped at 50 gwei, 2 + 4 uncapped (JSON Infinity); at 10, 50, 51 and
    200 gwei 16, 16, 6 and 6 of them can get a transaction in (cap >= gas, as Liquidator.can_transact)."""
    spec = json.loads(json.dumps({"liquidators": {
        "count": 10, "max_gas_gwei": 50.0, "strategy": "default",
        "groups": {"active": {"count": 2, "max_gas_gwei": float("inf"), "strategy": "default"},
                   "zero": {"count": 4, "max_gas_gwei": float("inf"), "strategy": "lowball"},
                   "none": {"count": 0, "max_gas_gwei": 1.0}}}}))
    groups = vf.keeper_groups(spec)
    assert [(g.name, g.count, g.strategy, g.max_gas_gwei) for g in groups] == [
        ("main", 10, "default", 50.0), ("active", 2, "default", np.inf), ("zero", 4, "lowball", np.inf)]
    assert vf.keepers_able(groups, np.array([10.0, 50.0, 51.0, 200.0])).tolist() == [16, 16, 6, 6]
    assert vf.keeper_groups({"run": {}}) == ()
