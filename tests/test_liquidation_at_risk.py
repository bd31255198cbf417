"""Liquidation-at-risk curves: the static curve is a direct computation over the book; cascades only add."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.liquidation_at_risk import (
    BookSnapshot,
    cascade_curve,
    initial_snapshot,
    lar_table,
    ranking,
    static_curve,
)
from cascadelab.book import PositionBook
from cascadelab.rng import run_seed
from cascadelab.spec import VenueConfig, load_spec

SCENARIOS = Path(__file__).resolve().parents[1] / "experiments" / "scenarios"
DROPS = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.45])


def random_snapshot(seed: int = 3, n: int = 60, venue: str = "constant_product") -> BookSnapshot:
    """Two protocols, two assets (multi-collateral rows), USD debt, healths spread around 1.2."""
    rng = np.random.default_rng(seed)
    coll = rng.uniform(0.0, 10.0, (n, 2)) * (rng.random((n, 2)) < 0.8)
    coll[coll.sum(axis=1) == 0, 0] = 1.0
    protocol = np.sort(rng.integers(0, 2, n))
    lt = np.array([[0.8, 0.7], [0.75, 0.6]])
    px = np.array([2000.0, 100.0])
    weighted = (coll * lt[protocol]) @ px
    debt = weighted / rng.uniform(1.0, 1.6, n)
    book = PositionBook.of(coll, debt, lt, assets=["X", "Y"], protocols=["p", "q"], protocol=protocol)
    cfg = VenueConfig(kind=venue, depth_usd=2e5, fee=0.003, recovery_halflife_steps=10)
    return BookSnapshot(book=book, prices=px, z=np.zeros(2), venues=(cfg, cfg), initial_prices=px,
                        bonus=np.array([0.05, 0.1]), close_factor=np.array([0.5, 1.0]),
                        oracle_lag=np.array([0, 1]))


@pytest.mark.parametrize("shock", ["X", "Y", "all"])
def test_static_curve_equals_direct_computation(shock: str) -> None:
    """For each drop: shocked prices, PositionBook.health of every position, sum the collateral
    (per protocol and asset, at the shocked price) of those below 1 -- one position at a time."""
    snap = random_snapshot()
    book = snap.book
    got = static_curve(snap, shock, DROPS).set_index(["drop", "protocol", "asset"])["static_usd"]
    for d in DROPS:
        px = snap.prices.copy()
        if shock == "all":
            px *= 1 - d
        else:
            px[["X", "Y"].index(shock)] *= 1 - d
        oracle = np.tile(np.append(px, 1.0), (2, 1))
        hf = book.health(oracle)
        want = {}
        for i in range(book.n):
            for a, asset in enumerate(book.assets):
                key = (d, book.protocols[book.protocol[i]], asset)
                want[key] = want.get(key, 0.0) + (book.collateral[i, a] * px[a] if hf[i] < 1.0 else 0.0)
        for key, value in want.items():
            assert got.loc[key] == pytest.approx(value, rel=1e-12, abs=1e-9)


def test_cascade_curve_adds_to_static_and_equals_it_without_impact() -> None:
    snap = random_snapshot()
    static = static_curve(snap, "all", DROPS)["static_usd"].to_numpy()
    cascade, info = cascade_curve(snap, "all", DROPS)
    assert (cascade["cascade_usd"].to_numpy() >= static - 1e-9).all()
    assert cascade["cascade_usd"].sum() > static.sum()  # a thin venue ($200k) feeds back
    assert (info["sold_usd"] > 0).any() and (info[["max_impact_X", "max_impact_Y"]] > 0).any().any()
    flat = random_snapshot(venue="none")
    same, info_flat = cascade_curve(flat, "all", DROPS)
    np.testing.assert_allclose(same["cascade_usd"], static_curve(flat, "all", DROPS)["static_usd"], rtol=1e-12)
    assert (info_flat[["max_impact_X", "max_impact_Y"]] == 0).all().all()


def test_ranking_measure_by_hand() -> None:
    """Mean share over drops 0..0.3 by the trapezoid rule: shares 0, 0.1, 0.4, 0.9 at drops 0, 0.1,
    0.2, 0.3 give (0.05 + 0.25 + 0.65) * 0.1 / 0.3 = 0.31667; the 10% threshold is first met at 0.1."""
    drops = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    share = np.array([0.0, 0.1, 0.4, 0.9, 1.0])
    rows = []
    for shock, asset in (("all", "X"), ("X", "X")):
        rows.append(pd.DataFrame({"shock": shock, "drop": drops, "protocol": "p", "asset": asset,
                                  "static_usd": 0.5 * share * 100.0, "cascade_usd": share * 100.0,
                                  "collateral_usd": 100.0}))
    r = ranking(pd.concat(rows, ignore_index=True)).set_index("kind")
    assert r.loc["protocol", "cascade_share"] == pytest.approx(0.95 * 0.1 / 0.3)
    assert r.loc["protocol", "static_share"] == pytest.approx(0.5 * 0.95 * 0.1 / 0.3)
    assert r.loc["asset", "first_drop"] == pytest.approx(0.1)
    assert r.loc["asset", "name"] == "X"


def test_depeg_scenario_ranks_steth_first() -> None:
    """The thinner stETH venue and the riskier stETH books make stETH the asset most at risk."""
    spec = load_spec(SCENARIOS / "eth_steth_depeg.toml", {"populations.aave_eth.count": 600,
                                                            "populations.aave_steth.count": 400,
                                                            "populations.maker_eth.count": 300,
                                                            "populations.maker_steth.count": 200})
    snap = initial_snapshot(spec, run_seed(spec.run.seed))
    curves, _ = lar_table(snap, drops=np.linspace(0.0, 0.3, 7), shocks=["ETH", "stETH"])
    r = ranking(curves)
    assets = r[r["kind"] == "asset"].set_index("name")
    assert assets.loc["stETH", "rank"] == 1
    assert (assets["cascade_share"] >= assets["static_share"]).all()
