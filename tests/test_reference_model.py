"""The benchmark's reference Mesa model (benchmarks/reference_mesa.py) runs the same rules as cascadelab.

The speed ratio in benchmarks/ means something only if both models simulate the same
thing; these tiny scenarios (50 positions, 100 steps, a 50% crash into a thin pool, so
there are repeated liquidations, a cascade and bad debt) must agree on liquidation count
and bad debt within the tolerance the benchmark states.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import cascadelab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_mesa import (  # noqa: E402
    AGREEMENT_TOLERANCE,
    Pool,
    ReferenceParams,
    crash_price,
    reference_spec,
    relative_difference,
    run_reference,
)

CRASH = [[0, 2000.0], [30, 1400.0], [60, 1000.0], [100, 1100.0]]


@pytest.mark.parametrize("options", [
    {},
    {"gas_usd": 25.0, "keepers": 3},
    {"depth_usd_per_position": 10_000.0},
], ids=["one_keeper", "gas_three_keepers", "thin_pool"])
def test_reference_and_cascadelab_agree(options: dict) -> None:
    raw = reference_spec(50, 100, crash=CRASH, **options)
    ref = run_reference(raw)
    fast = cascadelab.run(raw).metrics
    assert ref["liquidation_count"] > 50, "the scenario must liquidate repeatedly"
    assert ref["bad_debt_usd"] > 1_000.0, "the scenario must leave bad debt"
    for key, tol in AGREEMENT_TOLERANCE.items():
        assert relative_difference(ref[key], fast[key]) <= tol, (key, ref[key], fast[key])
    assert relative_difference(ref["max_price_impact"], fast["max_price_impact"]) <= 1e-6


def test_reference_rejects_what_it_does_not_model() -> None:
    """A deviation oracle (or any rule the reference lacks) is refused, not silently approximated."""
    raw = reference_spec(10, 10)
    raw["protocols"]["lender"]["oracle"] = {"kind": "deviation"}
    with pytest.raises(ValueError, match="instant oracle"):
        ReferenceParams.from_spec(cascadelab.load_spec(raw))


def test_pool_matches_constant_product_arithmetic() -> None:
    """$10M pool at $2,000: x = 2,500 ETH, y = $5M.  Selling 100 ETH with a 0.3% fee
    puts 99.7 ETH in: out = 5e6 * 99.7 / 2599.7 = 191,752.894... and k stays 1.25e10."""
    pool = Pool(10e6, 2000.0, 0.003)
    out = pool.sell(100.0)
    assert out == pytest.approx(5e6 * 99.7 / 2599.7, rel=1e-12)
    assert pool.eth * pool.usd == pytest.approx(1.25e10, rel=1e-12)
    pool.arbitrage_to(2000.0)
    assert pool.price() == pytest.approx(2000.0, rel=1e-12)


def test_crash_price_interpolates_knots() -> None:
    """Halfway between (30, 1400) and (60, 1000) is 1200; after the last knot the price is flat."""
    knots = [(float(s), p) for s, p in CRASH]
    assert crash_price(knots, 45) == pytest.approx(1200.0)
    assert crash_price(knots, 500) == 1100.0


def test_harness_measures_both_engines_on_the_same_scenario() -> None:
    """benchmarks/run.py's worker: the same spec through both engines gives the same liquidation count."""
    from run import measure

    task = {"scenario": "reference", "positions": 30, "steps": 300}  # 20 liquidations by step 300
    fast = measure({**task, "engine": "cascadelab"})
    ref = measure({**task, "engine": "reference"})
    assert fast["seconds"] > 0 and ref["seconds"] > 0
    assert fast["metrics"]["liquidation_count"] == ref["metrics"]["liquidation_count"] > 0
    assert fast["peak_rss_mb"] >= fast["rss_before_mb"] > 0


def test_bench_command_outside_a_checkout_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Installed without benchmarks/, ``cascadelab bench`` exits 2 with one line saying why."""
    from cascadelab.cli import main
    from cascadelab.commands import bench

    monkeypatch.setattr(bench, "benchmark_script", lambda: Path("/nonexistent/benchmarks/run.py"))
    assert main(["bench", "--quick"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_the_reference_crash_scenario_file_is_the_benchmark_spec() -> None:
    """experiments/scenarios/reference_crash.toml (timed by the Sobol' study benchmark) is reference_spec(1000)."""
    from cascadelab.spec import spec_to_dict

    path = Path(__file__).resolve().parents[1] / "experiments" / "scenarios" / "reference_crash.toml"
    assert spec_to_dict(cascadelab.load_spec(path)) == spec_to_dict(cascadelab.load_spec(reference_spec(1000)))
