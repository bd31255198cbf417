"""partial: repay-to-target closed form, Euler v1 discount, Morpho Blue LIF (mechanisms.md 5.1, 5.3).

Books hold one asset at an oracle price of $1,000 with USD debt, so value = 1,000 x units and
health = value * LT / debt.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascadelab.book import PositionBook
from mechanisms.base import Bids
from mechanisms.checks import exercise
from mechanisms.partial import incentive_factor
from mechanisms.registry import make, parse_config
from mechanisms.valuation import Valuation
from tests.test_mechanism_properties import books

PX = np.array([1000.0, 1.0])


def mechanism_on(units: float, debt: float, lt: float, **params: object):
    book = PositionBook.of(np.array([[units]]), np.array([debt]), np.array([lt]))
    mech = make(parse_config({"kind": "partial", **params}, "m"), 0, 1)
    mech.start(np.flatnonzero(book.health(PX[None, :]) < 1.0), 1)
    return mech, book, mech.offers(book, PX, 1)


def take_all(mech, book, offers):
    fills = mech.settle(book, Bids(np.arange(offers.size), np.zeros(offers.size, dtype=np.int64),
                                   offers.max_pay.copy()), 1)
    book.apply(fills)
    return fills


def one(v: float, w: float, d: float) -> Valuation:
    return Valuation(value=np.array([v]), weighted=np.array([w]), debt=np.array([d]), p_debt=1.0)


def test_fixed_incentive_repays_exactly_to_the_target() -> None:
    """V 10,000, W 8,250 (LT 0.825), D 9,000 (HF 0.9167), bonus 5%, target 1.25.

    r = (1.25 * 9,000 - 8,250) / (1.25 - 0.825 * 1.05) = 3,000 / 0.38375 = 7,817.59;
    after it: V 10,000 - 1.05 r = 1,791.53, D 1,182.41, health 1,791.53 * 0.825 / 1,182.41 = 1.25.
    """
    mech, book, off = mechanism_on(10, 9_000, 0.825, incentive="fixed", bonus=0.05)
    assert off.max_pay[0] == pytest.approx(3_000 / 0.38375, rel=1e-12)
    take_all(mech, book, off)
    assert book.health(PX[None, :])[0] == pytest.approx(1.25, rel=1e-12)


def test_euler_discount_and_repay_to_target() -> None:
    """HF 0.98 (D = 8,250/0.98 = 8,418.37): discount 0.02 + 0.02 = 0.04, 1 + i = 1/0.96 = 1.041667.

    r = (1.25 * 8,418.37 - 8,250) / (1.25 - 0.825/0.96) = 2,272.96 / 0.390625 = 5,818.78;
    the keeper pays r * 1.02 (reserves fee) = 5,935.16 and receives r/0.96 = 6,061.23 of collateral.
    """
    d = 8250 / 0.98
    r = (1.25 * d - 8250) / (1.25 - 0.825 / 0.96)
    mech, book, off = mechanism_on(10, d, 0.825)
    assert off.max_pay[0] == pytest.approx(1.02 * r, rel=1e-12)
    fills = take_all(mech, book, off)
    assert fills.repaid[0] == pytest.approx(r, rel=1e-12)
    assert fills.paid[0] == pytest.approx(1.02 * r, rel=1e-12)
    assert fills.seized[0, 0] * 1000 == pytest.approx(r / 0.96, rel=1e-12)
    assert book.health(PX[None, :])[0] == pytest.approx(1.25, rel=1e-12)


@pytest.mark.parametrize(("hs", "booster", "discount"), [
    (0.98, 1.0, 0.04),     # 0.02 + 0.02
    (0.85, 1.0, 0.17),     # 0.02 + 0.15
    (0.85, 2.0, 0.195),    # min(0.34, 0.17 + 0.025, 0.20)
    (0.95, 2.0, 0.095),    # min(0.14, 0.07 + 0.025, 0.20)
    (0.70, 1.0, 0.20),     # 0.32 capped at MAXIMUM_DISCOUNT
])
def test_euler_discount_table(hs: float, booster: float, discount: float) -> None:
    cfg = parse_config({"kind": "partial", "incentive": "euler", "booster": booster}, "m")
    factor = incentive_factor(cfg, one(1000.0, 1000.0 * hs, 1000.0))
    assert 1 - 1 / factor[0] == pytest.approx(discount, rel=1e-12)


@pytest.mark.parametrize(("lltv", "lif"), [
    (0.50, 1.1500), (0.625, 1.1268), (0.77, 1.0741), (0.80, 1.0638), (0.86, 1.0438),
    (0.915, 1.0262), (0.945, 1.0168), (0.965, 1.0106), (0.98, 1.0060),
])
def test_morpho_lif_matches_the_reference_table(lltv: float, lif: float) -> None:
    """LIF = min(1.15, 1/(0.3 LLTV + 0.7)), e.g. LLTV 0.86: 1/0.958 = 1.0438 (mechanisms.md 5.3 table)."""
    cfg = parse_config({"kind": "partial", "incentive": "morpho"}, "m")
    assert incentive_factor(cfg, one(1000.0, 1000.0 * lltv, 2000.0))[0] == pytest.approx(lif, abs=5e-5)


def test_morpho_without_target_repays_everything_it_can() -> None:
    """target inf: repay min(D, V/LIF). LT 0.86, V 10,000, D 9,000: LIF 1.0438, V/LIF = 9,580 > D: repay 9,000."""
    _, _, off = mechanism_on(10, 9_000, 0.86, incentive="morpho", target_health=float("inf"))
    assert off.max_pay[0] == pytest.approx(9_000.0, rel=1e-12)


def test_cap_at_collateral_ratio_limits_the_incentive() -> None:
    """CR 1.04 (V 10,400, D 10,000), HS 0.858: Euler's discount 0.162 (1 + i = 1.193) is capped at 1.04."""
    cfg = parse_config({"kind": "partial", "cap_at_collateral_ratio": True}, "m")
    assert incentive_factor(cfg, one(10_400.0, 10_400.0 * 0.825, 10_000.0))[0] == pytest.approx(1.04, rel=1e-12)
    cfg = parse_config({"kind": "partial"}, "m")
    assert incentive_factor(cfg, one(10_400.0, 10_400.0 * 0.825, 10_000.0))[0] == pytest.approx(
        1 / (1 - (0.02 + 1 - 0.858)), rel=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incentive=st.sampled_from(["fixed", "euler", "morpho"]), target=st.sampled_from([1.01, 1.25, 2.0, float("inf")]),
       cap=st.booleans(), bonus=st.floats(0.0, 0.3), booster=st.floats(1.0, 2.0), case=books())
def test_partial_any_parameters(incentive: str, target: float, cap: bool, bonus: float, booster: float,
                                case: tuple[PositionBook, list[np.ndarray]]) -> None:
    """The conformance suite over every incentive, targets (incl. none), the toxic cap and bonus/booster ranges."""
    book, path = case
    config = parse_config({"kind": "partial", "incentive": incentive, "target_health": target,
                           "cap_at_collateral_ratio": cap, "bonus": bonus, "booster": booster}, "m")
    assert exercise(lambda: make(config, 0, book.n_assets), book, path) == []


def test_an_inline_table_override_swaps_the_mechanism(capsys: pytest.CaptureFixture[str]) -> None:
    """--set PATH={kind=...} replaces the whole mechanism table (README, 'Swapping the liquidation mechanism')."""
    from cascadelab.cli import main
    from cascadelab.spec import load_spec

    spec = load_spec(None, ['protocols.lender_b.mechanism={kind="partial", incentive="morpho", target_health=inf}'])
    mech = spec.protocols["lender_b"].mechanism
    assert (type(mech).kind_id, mech.incentive, mech.target_health) == ("partial", "morpho", float("inf"))
    assert main(["run", "--set", "run.steps=30", "--set", 'protocols.lender_b.mechanism={kind="backstop_pool"}',
                 "--json"]) == 0
    assert '"metrics"' in capsys.readouterr().out
