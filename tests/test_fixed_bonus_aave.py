"""Aave v3.3 and Compound v2 rules of fixed_bonus, from the formulas (mechanisms.md 1.2-1.5, 2.1).

Books have one ETH-like asset at an oracle price of $1,000 and USD debt, so a position's
collateral value is 1,000 x its units and health = value * LT / debt.
"""

from __future__ import annotations

import numpy as np
import pytest

import cascadelab
from cascadelab.book import PositionBook
from cascadelab.schema import SpecError
from mechanisms.base import Bids, Fills, Offers
from mechanisms.registry import make, parse_config
from tests.conftest import single_position_spec

PX = np.array([1000.0, 1.0])


def offers_for(units: float, debt: float, lt: float, **params: object) -> tuple[object, PositionBook, Offers]:
    book = PositionBook.of(np.array([[units]]), np.array([debt]), np.array([lt]))
    mech = make(parse_config({"kind": "fixed_bonus", **params}, "m"), 0, 1)
    mech.start(np.flatnonzero(book.health(PX[None, :]) < 1.0), 1)
    return mech, book, mech.offers(book, PX, 1)


def settle(mech: object, book: PositionBook, pays: list[float]) -> Fills:
    bids = Bids(offer=np.zeros(len(pays), dtype=np.int64), taker=np.arange(len(pays), dtype=np.int64),
                pay=np.array(pays))
    return mech.settle(book, bids, 1)


def test_close_factor_switches_to_100_percent_at_health_095() -> None:
    """10 units ($10,000), LT 0.825: weighted value 8,250.

    Debt 8,250/0.9501 = 8,683.30: HF 0.9501 > 0.95, max pay 50% = 4,341.65.
    Debt 8,250/0.9499 = 8,685.12: HF 0.9499 <= 0.95, max pay = all of it (10,000/1.05 = 9,523.81 covers it).
    """
    d_hi, d_lo = 8250 / 0.9501, 8250 / 0.9499
    assert offers_for(10, d_hi, 0.825)[2].max_pay[0] == pytest.approx(0.5 * d_hi, rel=1e-12)
    assert offers_for(10, d_lo, 0.825)[2].max_pay[0] == pytest.approx(d_lo, rel=1e-12)
    # Compound v2 has no switch: 50% even at HF 0.5 (debt 16,500)
    assert offers_for(10, 16_500, 0.825, preset="compound_v2")[2].max_pay[0] == pytest.approx(8_250.0)


def test_dust_positions_can_be_closed_in_full() -> None:
    """HF above 0.95 but collateral or debt under $2,000: close factor 100%.

    Collateral $1,900, debt $1,750, LT 0.9: HF 1,710/1,750 = 0.977; max pay 1,750 (all debt).
    Collateral $2,100, debt $1,950, LT 0.9: HF 0.969; debt < $2,000: max pay 1,950.
    Ten times larger ($19,000 / $17,500): 50%, 8,750.
    """
    assert offers_for(1.9, 1_750, 0.9)[2].max_pay[0] == pytest.approx(1_750.0)
    assert offers_for(2.1, 1_950, 0.9)[2].max_pay[0] == pytest.approx(1_950.0)
    assert offers_for(19, 17_500, 0.9)[2].max_pay[0] == pytest.approx(8_750.0)


def test_leftover_rule_cuts_bids_that_would_leave_dust() -> None:
    """Collateral $10,000, debt $9,000, LT 0.825: HF 0.917, close factor 100%, max pay 9,000 (all debt).

    A partial liquidation must leave >= $1,000 of debt and of collateral:
    cap = min(9,000 - 1,000, (10,000 - 1,000)/1.05 = 8,571.43) = 8,000.
    Bids 8,500 -> cut to 8,000; 9,000 (everything) stands; 5,000 then 3,500 -> 5,000 then 3,000.
    """
    mech, book, off = offers_for(10, 9_000, 0.825, protocol_fee=0.0)
    assert off.max_pay[0] == pytest.approx(9_000.0)
    assert list(settle(mech, book, [8_500.0]).paid) == pytest.approx([8_000.0])
    assert list(settle(mech, book, [9_000.0]).paid) == pytest.approx([9_000.0])
    assert list(settle(mech, book, [5_000.0, 3_500.0]).paid) == pytest.approx([5_000.0, 3_000.0])


def test_leftover_rule_caps_a_half_close_that_would_leave_dust_collateral() -> None:
    """Collateral $2,040, debt $2,000, LT 0.95: HF 0.969 > 0.95 and both >= $2,000, so 50% = 1,000.

    Repaying 1,000 would seize 1,050 and leave $990 < $1,000 of collateral; the full amount is
    not reachable at 50%, so max pay = (2,040 - 1,000)/1.05 = 990.476.
    """
    off = offers_for(2.04, 2_000, 0.95)[2]
    assert off.max_pay[0] == pytest.approx(1_040 / 1.05, rel=1e-12)


def test_protocol_fee_is_a_share_of_the_bonus_for_aave_and_of_the_seizure_for_compound() -> None:
    """Pay 1,000 at $1,000.

    Aave (bonus 5%, fee 10% of the bonus): seized 1.05 units, treasury 0.1 * 0.05 = 0.005, keeper 1.045.
    Compound v2 (incentive 1.08, 2.8% of seized): seized 1.08, reserves 0.03024, keeper 1.04976.
    """
    mech, book, off = offers_for(10, 9_000, 0.825)
    assert off.receive_per_pay[0, 0] * 1_000 == pytest.approx(1.045, rel=1e-12)
    f = settle(mech, book, [1_000.0])
    assert (f.seized[0, 0], f.to_protocol[0, 0], f.received[0, 0]) == pytest.approx((1.05, 0.005, 1.045), rel=1e-12)
    mech, book, off = offers_for(10, 9_000, 0.825, preset="compound_v2")
    f = settle(mech, book, [1_000.0])
    assert (f.seized[0, 0], f.to_protocol[0, 0], f.received[0, 0]) == pytest.approx(
        (1.08, 0.03024, 1.04976), rel=1e-12)


def test_preset_fills_only_the_keys_not_given() -> None:
    cfg = parse_config({"kind": "fixed_bonus", "preset": "compound_v2", "bonus": 0.05}, "m")
    assert (cfg.bonus, cfg.full_close_health, cfg.protocol_fee, cfg.fee_base) == (0.05, 0.0, 0.028, "seized")
    with pytest.raises(SpecError, match=r"m\.preset"):
        parse_config({"kind": "fixed_bonus", "preset": "aave_v9"}, "m")


def test_aave_run_closes_an_unhealthy_position_in_one_step() -> None:
    """10 ETH, debt 15,000, LT 0.825, gap 2000 -> 1700: HF 0.935 <= 0.95, so 100% close.

    Repay 15,000 (17,000/1.05 = 16,190 would cover more); seize 15,750/1,700 = 9.2647 ETH.
    Treasury: 10% of the $750 bonus = $75; keeper PnL 750 - 75 = 675; borrower loss 750.
    """
    r = cascadelab.run(single_position_spec([[0, 2000.0], [1, 1700.0], [4, 1700.0]]))
    m = r.metrics
    assert m["liquidation_count"] == 1
    assert m["liquidated_debt_usd"] == pytest.approx(15_000.0, rel=1e-12)
    assert m["liquidated_usd"] == pytest.approx(15_750.0, rel=1e-12)
    assert m["liquidator_pnl_usd"] == pytest.approx(675.0, rel=1e-9)
    assert m["borrower_loss_usd"] == pytest.approx(750.0, rel=1e-9)
    assert r.fills.loc[0, "to_protocol_ETH"] * 1700 == pytest.approx(75.0, rel=1e-9)
