"""The toxic liquidation spiral (Warmuz, Chaudhary & Pinna 2022, arXiv:2212.07306) on a scripted price gap.

One position: 10 ETH, debt $15,000, LT 0.825, instant oracle, venue ``none`` (no impact), one
keeper without gas.  At step 1 the price gaps so that the collateral ratio CR = 10 P / 15,000
lands below or above 1 + bonus.  A fixed-bonus liquidation at CR < 1 + b lowers CR further
((C - r(1+b)) / (D - r) < C / D), so liquidations repeat until the collateral is gone, leaving
bad debt D (1 - CR/(1+b)); at CR > 1 + b each one raises CR and none is left.
"""

from __future__ import annotations

from typing import Any

import pytest

import cascadelab
from tests.conftest import single_position_spec

D = 15_000.0
COMPOUND = {"kind": "fixed_bonus", "preset": "compound_v2"}


def run_gap(price: float, mechanism: dict[str, Any]) -> cascadelab.RunResult:
    return cascadelab.run(single_position_spec([[0, 2000.0], [1, price], [12, price]], mechanism=mechanism))


def ratio_after_each_fill(r: cascadelab.RunResult, price: float) -> list[float]:
    liq = r.fills[r.fills["kind"] == "liquidation"]
    coll = 10.0 - liq["seized_ETH"].cumsum()
    debt = D - liq["repaid"].cumsum()
    return list((coll * price / debt).where(debt > 1e-6))


def test_compound_style_spiral_below_1_plus_bonus() -> None:
    """Compound v2 (50% per step, bonus 8%), gap to 1,560: CR 1.04 < 1.08.

    CR after each 50% liquidation: (1.04 - 0.5 * 1.08) / 0.5 = 1.00, then 0.92, 0.76, ...: it falls
    until the collateral is gone.  Bad debt = 15,000 (1 - 1.04/1.08) = 555.56.
    """
    r = run_gap(1560.0, COMPOUND)
    ratios = [x for x in ratio_after_each_fill(r, 1560.0) if x == x]
    assert ratios[:3] == pytest.approx([1.00, 0.92, 0.76], rel=1e-9)
    assert r.metrics["liquidation_count"] >= 4
    assert r.metrics["bad_debt_usd"] == pytest.approx(D * (1 - 1.04 / 1.08), rel=1e-9)


def test_aave_closes_at_once_with_the_same_bad_debt() -> None:
    """Aave v3.3 (bonus 5%), gap to 1,530: CR 1.02, HF 0.84 <= 0.95 so one 100% liquidation takes all
    collateral for 15,300/1.05 of debt: bad debt 15,000 (1 - 1.02/1.05) = 428.57, as the spiral would leave."""
    r = run_gap(1530.0, {})
    assert r.metrics["liquidation_count"] == 1
    assert r.metrics["bad_debt_usd"] == pytest.approx(D * (1 - 1.02 / 1.05), rel=1e-9)


def test_no_bad_debt_above_1_plus_bonus() -> None:
    """Compound v2, gap to 1,650: CR 1.10 > 1.08.  CR after each 50% step: 2 CR - 1.08 = 1.12, 1.16, 1.24
    (HF 1.023: healthy again); no bad debt."""
    r = run_gap(1650.0, COMPOUND)
    assert ratio_after_each_fill(r, 1650.0) == pytest.approx([1.12, 1.16, 1.24], rel=1e-9)
    assert r.metrics["bad_debt_usd"] == 0.0


def test_incentive_capped_at_the_collateral_ratio_avoids_the_spiral() -> None:
    """partial + Euler discount + cap_at_collateral_ratio, gap to 1,560 (CR 1.04, HS 0.858).

    1 + i = min(1/(1 - 0.162), 1.04) = 1.04; target 1.25 is unreachable (1.25 - 0.825 * 1.04 = 0.392,
    r = (18,750 - 12,870)/0.392 = 15,000 = D): the whole debt is repaid with all 10 ETH ($15,600).
    No bad debt; the keeper earns $600.
    """
    r = run_gap(1560.0, {"kind": "partial", "incentive": "euler", "cap_at_collateral_ratio": True})
    assert r.metrics["bad_debt_usd"] == pytest.approx(0.0, abs=1e-6)
    assert r.metrics["liquidated_debt_usd"] == pytest.approx(D, rel=1e-9)
    assert r.metrics["liquidator_pnl_usd"] == pytest.approx(600.0 - 0.02 * D, rel=1e-9)


def test_uncapped_euler_discount_deepens_bad_debt_after_a_gap() -> None:
    """The same gap without the cap: Euler's discount grows as health falls, 0.02 + (1 - 0.858) = 0.162,
    so all collateral goes for 15,600 * 0.838 = 13,072.8 of debt: bad debt 1,927.2, more than the
    fixed 8% bonus's 555.6.  A health-scaled incentive is a reverse Dutch auction in health: a gap
    jumps straight to a deep discount."""
    r = run_gap(1560.0, {"kind": "partial", "incentive": "euler"})
    assert r.metrics["bad_debt_usd"] == pytest.approx(D - 15_600 * (1 - (0.02 + 1 - 0.858)), rel=1e-9)


def test_morpho_lltv_scaled_incentive_narrows_the_toxic_band() -> None:
    """Gap to 1,590: CR 1.06.  Compound's 1.08 is above CR (bad debt 15,000 (1 - 1.06/1.08) = 277.78);
    Morpho's LIF at LLTV 0.825 is 1/(0.3 * 0.825 + 0.7) = 1.0554 < 1.06: no bad debt."""
    fixed = run_gap(1590.0, COMPOUND)
    morpho = run_gap(1590.0, {"kind": "partial", "incentive": "morpho"})
    assert fixed.metrics["bad_debt_usd"] == pytest.approx(D * (1 - 1.06 / 1.08), rel=1e-9)
    assert morpho.metrics["bad_debt_usd"] == 0.0
    assert morpho.metrics["liquidation_count"] >= 1
