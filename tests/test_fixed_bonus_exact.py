"""Hand-computable fixed-bonus runs: one position, a scripted price gap, a venue without impact.

These use the plain rule (50% close factor at any health, no dust rules, no protocol fee:
``PLAIN``) so the arithmetic stays short; the Aave v3.3 rules are tested in
tests/test_fixed_bonus_aave.py.
"""

from __future__ import annotations

import pytest

import cascadelab
from tests.conftest import single_position_spec

PLAIN = {"preset": "textbook"}


def test_one_liquidation_restores_health() -> None:
    """10 ETH, debt $15,000, LT 0.825; the price gaps 2000 -> 1700 at step 1 (HF 1.1 -> 0.935).

    Close factor 0.5: repay 7,500; seize 7,500 * 1.05 / 1700 = 4.63235 ETH ($7,875).
    Left: 5.36765 ETH and 7,500 debt, HF = 5.36765 * 1700 * 0.825 / 7500 = 1.0037: no more.
    """
    r = cascadelab.run(single_position_spec([[0, 2000.0], [1, 1700.0], [5, 1700.0]], mechanism=PLAIN))
    m = r.metrics
    assert m["liquidation_count"] == 1
    assert m["liquidated_debt_usd"] == pytest.approx(7_500.0, rel=1e-12)
    assert m["liquidated_usd"] == pytest.approx(7_875.0, rel=1e-12)
    assert m["borrower_loss_usd"] == pytest.approx(375.0, rel=1e-9)
    assert m["bad_debt_usd"] == 0.0
    assert m["liquidator_pnl_usd"] == pytest.approx(375.0, rel=1e-9)
    assert r.fills.loc[0, "seized_ETH"] == pytest.approx(7_875.0 / 1700.0, rel=1e-12)


def test_insolvent_position_runs_to_exhaustion_with_closed_form_bad_debt() -> None:
    """Gap to 1400: collateral $14,000 < debt * (1 + bonus); repeated 50% liquidations.

    Step 1: repay 7,500 (seize 5.625 ETH); step 2: 3,750 (2.8125); step 3: 1,875 (1.40625);
    step 4: the remaining 0.15625 ETH ($218.75) covers 218.75/1.05 = 208.33 of debt;
    the rest, 1,666.67, is written off.  Closed form: D0 - C0/(1+b) = 15000 - 14000/1.05.
    """
    r = cascadelab.run(single_position_spec([[0, 2000.0], [1, 1400.0], [10, 1400.0]], mechanism=PLAIN))
    m = r.metrics
    liq = r.fills[r.fills["kind"] == "liquidation"]
    assert list(liq["repaid"].round(6)) == pytest.approx([7500.0, 3750.0, 1875.0, 208.333333], rel=1e-9)
    assert m["bad_debt_usd"] == pytest.approx(15_000 - 14_000 / 1.05, rel=1e-12)
    assert m["liquidated_usd"] == pytest.approx(14_000.0, rel=1e-12)
    assert m["liquidated_debt_usd"] == pytest.approx(14_000 / 1.05, rel=1e-12)
    assert m["bad_debt_frac"] == pytest.approx((15_000 - 14_000 / 1.05) / 15_000, rel=1e-12)
    assert (r.fills["kind"] == "write_off").sum() == 1


def test_no_liquidation_while_healthy() -> None:
    r = cascadelab.run(single_position_spec([[0, 2000.0], [10, 1900.0]]))
    assert r.metrics["liquidation_count"] == 0 and r.metrics["bad_debt_usd"] == 0.0


def test_a_keeper_that_cannot_profit_leaves_the_position_open_and_counted_as_bad_debt() -> None:
    """With gas costing more than the bonus the keeper never acts; horizon shortfall is bad debt.

    Shortfall at 1400: debt 15,000 - collateral 14,000 = 1,000.
    """
    raw = single_position_spec([[0, 2000.0], [1, 1400.0], [5, 1400.0]])
    raw["liquidators"]["min_profit_usd"] = 1e6
    m = cascadelab.run(raw).metrics
    assert m["liquidation_count"] == 0
    assert m["bad_debt_usd"] == pytest.approx(1_000.0, rel=1e-12)


def test_selling_into_a_pool_moves_the_price_by_the_cpmm_formula() -> None:
    """Venue constant_product, depth $10M at 2000 (x = 2500 ETH): after the keeper sells the
    4.632 ETH it seized at step 1, the end-of-step market price is 1700 * (x1/(x1+q))^2 with
    x1 = L / sqrt(1700) the pool's ETH at the pre-sale price.
    """
    raw = single_position_spec([[0, 2000.0], [1, 1700.0], [3, 1700.0]], venue="constant_product",
                               mechanism=PLAIN)
    r = cascadelab.run(raw)
    q = r.fills.loc[0, "seized_ETH"]
    liquidity = 1e7 / (2 * 2000**0.5)
    x1 = liquidity / 1700**0.5
    assert r.timeseries.loc[1, "market_ETH"] == pytest.approx(1700 * (x1 / (x1 + q)) ** 2, rel=1e-12)


def test_a_keeper_group_above_its_gas_cap_cannot_liquidate() -> None:
    """Two groups: the main keeper is switched off (count 0); a congested group whose gas cap is
    below the gas price never gets included, so the insolvent position stays open (bad debt is
    the horizon shortfall 15,000 - 14,000); with a higher cap it liquidates as before."""
    raw = single_position_spec([[0, 2000.0], [1, 1400.0], [10, 1400.0]], mechanism=PLAIN)
    raw["gas"] = {"base_gwei": 200.0}
    raw["liquidators"].update(count=0, groups={"congested": {"count": 2, "max_gas_gwei": 100.0}})
    assert cascadelab.run(raw).metrics["liquidation_count"] == 0
    assert cascadelab.run(raw).metrics["bad_debt_usd"] == pytest.approx(1_000.0, rel=1e-12)
    raw["liquidators"]["groups"]["congested"]["max_gas_gwei"] = 300.0
    assert cascadelab.run(raw).metrics["bad_debt_usd"] == pytest.approx(15_000 - 14_000 / 1.05, rel=1e-12)
