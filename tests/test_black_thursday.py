"""The Black Thursday replay: the scenario says what its header says, the zero-bid mechanism is the
record's (lowball keepers win uncontested lots while the other keepers are priced out by gas), and the
zero-bid figure draws from a real saved replay.

The replay's outcome checks (zero-bid share, deficit, ETH won at ~0, the Dutch counterfactual, the
fixed spread) run as tests in tests/test_validation.py, one per registered check.
Reference: shared/reference/mechanisms.md sections 3.1, 3.2 and 7.1.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import cascadelab
from analysis import validation_figures as vf
from cascadelab.market.prices import knot_path
from cascadelab.model import CascadeModel
from cascadelab.rng import run_seed
from cascadelab.spec import load_spec
from cascadelab.validation import historical as h

SHORT = {"run.steps": 900, "populations.vaults.count": 200, "populations.automated.count": 200}
"""The replay cut to its first 15 hours (the first gas peak) and 400 vaults: about a second."""

PRICED_OUT_ABOVE = 50.0
"""Gas cap of the scenario's main keeper group (the reference keeper scripts)."""


@pytest.fixture(scope="module")
def short_replay() -> cascadelab.RunResult:
    return cascadelab.run(h.scenario(h.BT), overrides=SHORT)


def test_scenario_matches_its_header() -> None:
    """Record values in the file: the ETH knots (194.97 -> 171 at 7 h -> 136 at 12 h -> 95.87 at 26 h),
    ETH-A Liq 1.0 parameters, the OSM stand-in; gas 10 gwei at the start, peaks of 200, mean over the
    first 24 h 77 gwei (record: ~80), above the main group's 50-gwei cap from 8 h to 32 h exactly; and a
    book of ~$94M of debt (the order of Maker's size then)."""
    spec = load_spec(h.scenario(h.BT))
    knots = dict(spec.assets["ETH"].path)
    assert (knots[0], knots[420], knots[720], knots[1560]) == (194.97, 171.0, 136.0, 95.87)
    mech = spec.protocols["maker"].mechanism
    assert (mech.lump, mech.chop, mech.beg, mech.ttl, mech.tau) == (50.0, 1.13, 1.03, 600.0, 21_600.0)
    assert spec.protocols["maker"].markets["ETH"].liquidation_threshold == pytest.approx(1 / 1.5, abs=1e-4)
    osm = spec.protocols["maker"].oracle
    assert (osm.kind, osm.lag_steps, osm.heartbeat_steps, osm.threshold) == ("deviation", 60, 60, 0.99)
    gas = knot_path(spec.gas.path, spec.run.steps)
    assert (gas[0], gas.max()) == (10.0, 200.0)
    assert gas[:1440].mean() == pytest.approx(77.26, abs=0.01)
    out = np.flatnonzero(gas > PRICED_OUT_ABOVE)
    assert (out[0], out[-1]) == (481, 1919)  # 8 h to 32 h, at 60-s steps
    groups = {name: cfg for name, cfg in spec.liquidators.all_groups()}
    assert groups["main"].max_gas_gwei == PRICED_OUT_ABOVE and groups["main"].count == 10
    assert groups["zero_bidders"].count == 4 and groups["zero_bidders"].strategy == "lowball"
    assert math.isinf(groups["active"].max_gas_gwei) and math.isinf(groups["zero_bidders"].max_gas_gwei)
    debt = CascadeModel(spec, run_seed(spec.run.seed)).book.debt.sum()
    assert 93e6 < debt < 95e6


def test_zero_bids_are_won_by_lowball_keepers_while_the_others_are_priced_out(
        short_replay: cascadelab.RunResult) -> None:
    """Every auction settled at ~0 went to one of the four lowball keepers (indices 12-15: 10 main, 2
    active first), repaid nothing and wrote its whole debt off, and the gas price stayed above the main
    group's cap through its last ttl (the 11 steps before the deal); auctions also settled at a price."""
    r = short_replay
    frame = h.auction_fill_frame(r.fills, r.timeseries, "ETH", r.spec.run.dt_seconds)
    zero = r.fills.loc[frame.index[frame["zero_bid"]]]
    assert len(zero) > 10 and (~frame["zero_bid"]).sum() > 10
    assert set(zero["taker"]) <= {12, 13, 14, 15}
    assert (zero["repaid"] == 0).all() and (zero["paid"] == 0).all() and (zero["written_off"] > 0).all()
    gas = r.timeseries.set_index("step")["gas_gwei"]
    assert min(gas.loc[s - 11: s].min() for s in zero["step"]) > PRICED_OUT_ABOVE
    assert r.metrics["bad_debt_usd"] == pytest.approx(zero["written_off"].sum(), rel=1e-9)


def test_zero_bid_figure_from_a_short_real_replay(short_replay: cascadelab.RunResult, tmp_path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`cascadelab run --out` then `python -m analysis.validation_figures RUN --out f.png`: the summary
    line counts what the RunResult holds, the gas panel draws the 50-gwei cap and says 6 of the 16
    keepers can bid above it, and the priced-out hours are shaded on every panel."""
    r = short_replay
    run_dir = tmp_path / "run"
    r.save(run_dir)
    out = tmp_path / "bt.png"
    assert vf.main([str(run_dir), "--out", str(out)]) == 0
    assert out.stat().st_size > 50_000
    frame = h.auction_fill_frame(r.fills, r.timeseries, "ETH", r.spec.run.dt_seconds)
    n, z = len(frame), int(frame["zero_bid"].sum())
    assert f"{n} auctions settled, {z} at or near zero ({100 * z / n:.1f}%)" in capsys.readouterr().out

    saved = vf.load_run(run_dir)
    pd.testing.assert_frame_equal(saved.fills.reset_index(drop=True), r.fills.reset_index(drop=True),
                                  check_dtype=False, check_categorical=False)
    fig = vf.plot_zero_bids(frame, saved.timeseries, "ETH", saved.dt_seconds, saved.keepers)
    gas_ax = fig.axes[-1]
    assert gas_ax.get_title() == "keepers able to get a bid in: 16 in calm blocks, 6 above 50 gwei"
    assert any(list(line.get_ydata()) == [PRICED_OUT_ABOVE, PRICED_OUT_ABOVE] for line in gas_ax.get_lines())
    assert all(len(ax.patches) >= 1 for ax in (fig.axes[0], gas_ax))  # the shaded span
    vf.plt.close(fig)
