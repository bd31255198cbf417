"""Fundamental price processes, oracles and gas."""

from __future__ import annotations

import numpy as np
import pytest

from cascadelab.market.gas import GasMarket
from cascadelab.market.oracles import Oracle
from cascadelab.market.prices import fundamental_paths
from cascadelab.spec import GasConfig, OracleConfig, load_spec


def market_spec(**assets: dict) -> dict:
    return {
        "run": {"steps": 20_000, "dt_seconds": 3600},
        "assets": assets,
        "protocols": {"p": {"markets": {a: {} for a in assets}}},
    }


def test_path_without_noise_is_the_piecewise_linear_knots() -> None:
    spec = load_spec(market_spec(ETH={"process": "path", "path": [[0, 100.0], [10, 50.0], [20, 80.0]]}),
                     {"run.steps": 30})
    f = fundamental_paths(spec, np.random.default_rng(0))[:, 0]
    assert f[5] == pytest.approx(75.0) and f[10] == 50.0 and f[15] == pytest.approx(65.0) and f[30] == 80.0


def test_correlated_gbm_has_the_requested_volatility_and_correlation() -> None:
    raw = market_spec(A={"price": 100.0, "sigma": 0.5}, B={"price": 50.0, "sigma": 1.0})
    raw["correlation"] = {"A": {"B": 0.7}}
    spec = load_spec(raw)
    f = fundamental_paths(spec, np.random.default_rng(1))
    r = np.diff(np.log(f), axis=0)
    dt = 3600 / (365 * 24 * 3600)
    assert r.std(axis=0) / np.sqrt(dt) == pytest.approx([0.5, 1.0], rel=0.03)
    assert np.corrcoef(r.T)[0, 1] == pytest.approx(0.7, abs=0.02)


def test_jump_diffusion_jumps_and_stays_mean_one() -> None:
    """Merton: with -10% mean jumps at 50/yr, log returns are left-skewed; the compensator keeps E[F_T] = F_0."""
    raw = market_spec(A={"price": 100.0, "process": "jump_diffusion", "sigma": 0.2,
                         "jump_rate": 50.0, "jump_mean": -0.1, "jump_sd": 0.05})
    spec = load_spec(raw, {"run.steps": 8760})
    ends = np.array([fundamental_paths(spec, np.random.default_rng(s))[-1, 0] for s in range(300)])
    assert ends.mean() == pytest.approx(100.0, rel=0.05)
    r = np.diff(np.log(fundamental_paths(spec, np.random.default_rng(0))[:, 0]))
    assert ((r - r.mean()) ** 3).mean() < 0


def test_deviation_oracle_threshold_heartbeat_and_lag() -> None:
    """Updates on a >1% move of the price 2 steps ago, or every 5 steps."""
    observed = np.zeros((12, 1))
    observed[:, 0] = [100, 100.5, 100.8, 102, 102, 102.5, 102.5, 102.5, 102.5, 102.5, 102.5, 90]
    o = Oracle(OracleConfig(kind="deviation", threshold=0.01, heartbeat_steps=5, lag_steps=2), observed)
    seen = [float(o.update(t)[0]) for t in range(1, 12)]
    # t=3,4 read 100.5, 100.8 (< 1%): no update; t=5 reads observed[3]=102 (+2%): update;
    # t=7 reads 102.5 (+0.49%): no; t=10 is the heartbeat (5 steps after t=5) and reads observed[8]=102.5
    assert seen == [100, 100, 100, 100, 102, 102, 102, 102, 102, 102.5, 102.5]


def test_twap_oracle_averages_the_window() -> None:
    observed = np.arange(10, dtype=float)[:, None] + 100
    o = Oracle(OracleConfig(kind="twap", window_steps=4, lag_steps=0), observed)
    assert o.update(6)[0] == pytest.approx(np.mean([103, 104, 105, 106]))


def test_gas_spikes_with_the_token_move() -> None:
    """gwei = base * (1 + s * 100 * |ln(P_t/P_{t-w})|): a 10% fall with s=0.5 -> ~6.27x."""
    hist = np.full((3, 1), 100.0)
    hist[2, 0] = 90.0
    g = GasMarket(GasConfig(base_gwei=10.0, sensitivity=0.5, window_steps=2), steps=2, token_asset=0)
    assert g.update(2, hist) == pytest.approx(10.0 * (1 + 0.5 * 100 * abs(np.log(0.9))))
    assert g.cost_usd(1e6) == pytest.approx(1e6 * g.gwei * 1e-9 * 90.0)
