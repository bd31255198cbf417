"""Maker Liq 2.0 Dutch auction: Abacus curves, ETH-B / YFI-A reference numbers, takes, resets, caps, incentives.

Reference: shared/reference/mechanisms.md section 3.3 (dss dog.sol, clip.sol, abaci.sol).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascadelab
from cascadelab.book import PositionBook
from mechanisms.abacus import ExponentialDecrease, LinearDecrease, StairstepExponentialDecrease
from mechanisms.base import PROTOCOL, Bids, Fills
from mechanisms.checks import exercise
from mechanisms.dutch_auction import DutchAuction
from mechanisms.registry import make, parse_config
from tests.conftest import single_position_spec


def dutch(dt_seconds: float = 60.0, **params: object) -> DutchAuction:
    mech = make(parse_config({"kind": "dutch_auction", **params}, "m"), 0, 1, dt_seconds)
    assert isinstance(mech, DutchAuction)
    return mech


def step(mech: DutchAuction, book: PositionBook, px: float, t: int, take: float = 0.0) -> list[Fills]:
    """One step: start, offers, keeper 0 pays ``take`` times max_pay on every offer, settle, end_step."""
    p = np.array([px, 1.0])
    mech.start(np.flatnonzero(book.health(p[None, :]) < 1.0), t)
    offers = mech.offers(book, p, t)
    bids = Bids(np.arange(offers.size), np.zeros(offers.size, dtype=np.int64), take * offers.max_pay)
    out = [mech.settle(book, bids, t)]
    book.apply(out[0])
    out.append(mech.end_step(book, t))
    book.apply(out[1])
    return out


# --------------------------------------------------------------------------- Abacus curves


def test_linear_curve_prices() -> None:
    """LinearDecrease tau = 3600 s: top * (tau - dur) / tau, zero from tau on.

    dur 0 -> 1; 900 -> 2700/3600 = 0.75; 3599 -> 1/3600; 3600 and 4000 -> 0.
    """
    f = LinearDecrease(tau=3600.0).factor(np.array([0.0, 900.0, 3599.0, 3600.0, 4000.0]))
    assert f == pytest.approx([1.0, 0.75, 1 / 3600, 0.0, 0.0], rel=1e-12)


def test_stairstep_curve_prices() -> None:
    """StairstepExponentialDecrease cut 0.99, step 60 s: top * 0.99 ** floor(dur / 60).

    dur 59 -> 0.99^0 = 1; 60 -> 0.99; 150 -> 0.99^2 = 0.9801; 5400 -> 0.99^90 = 0.404732.
    """
    f = StairstepExponentialDecrease(cut=0.99, step=60.0).factor(np.array([59.0, 60.0, 150.0, 5400.0]))
    assert f == pytest.approx([1.0, 0.99, 0.9801, 0.99**90], rel=1e-12)
    assert f[3] == pytest.approx(0.404732, abs=1e-6)


def test_exponential_curve_prices() -> None:
    """ExponentialDecrease cut per second: top * cut ** dur; the default 0.99**(1/60) loses 1% per minute.

    cut 0.9999: dur 100 -> 0.9999^100 = 0.990050; default: dur 60 -> 0.99, dur 90 -> 0.99^1.5 = 0.985038.
    """
    assert ExponentialDecrease(cut=0.9999).factor(np.array([100.0]))[0] == pytest.approx(0.9999**100, rel=1e-12)
    assert ExponentialDecrease().factor(np.array([60.0, 90.0])) == pytest.approx([0.99, 0.99**1.5], rel=1e-12)


# --------------------------------------------------------------------------- production parameter sets


def one_vault(collateral: float = 10.0, debt: float = 15_000.0) -> PositionBook:
    return PositionBook.of(np.array([[collateral]]), np.array([debt]), np.array([0.825]))


def test_eth_b_reaches_the_osm_price_after_18_1_steps_and_resets_at_48_6_percent() -> None:
    """ETH-B (buf 1.20, cut 0.99 per 60 s, tail 90 min, cusp 0.4; one step = 60 s).

    Price / OSM = 1.2 * 0.99^k: k = ln(1/1.2)/ln(0.99) = 18.14 steps to reach the OSM price, so after
    18 steps it is still 1.2 * 0.99^18 = 1.00142 and after 19 steps 0.99140.  At the 90-minute tail
    (k = 90) the price is 1.2 * 0.99^90 = 0.48568 of the OSM price (cusp not hit: 0.99^90 = 0.4047
    > 0.4); the auction is done once dur > tail, i.e. at k = 91 (5460 s), and the redo restarts at
    buf * the OSM price.
    """
    assert math.log(1 / 1.2) / math.log(0.99) == pytest.approx(18.1408, abs=1e-4)
    mech, book = dutch(), one_vault()
    osm = 1700.0
    step(mech, book, osm, 1)  # 10 ETH at 1700, LT 0.825: HF 0.935 -> bark at t = 1
    ratio = {}
    for t in range(2, 93):
        offers = mech.offers(book, np.array([osm, 1.0]), t)
        ratio[t - 1] = mech.top[0, 0] * mech.price_factor(t)[0] / osm if offers.size else None
        mech.settle(book, Bids.empty(), t)
    assert ratio[18] == pytest.approx(1.2 * 0.99**18, rel=1e-12) and ratio[18] > 1.0
    assert ratio[19] == pytest.approx(0.9914023486, rel=1e-9) and ratio[19] < 1.0
    assert ratio[90] == pytest.approx(0.4856783672, rel=1e-9)
    assert ratio[91] == pytest.approx(1.2, rel=1e-12)  # reset at k = 91: new tic, top = 1.2 * OSM
    assert mech.tic[0] == 92


def test_yfi_a_hits_cusp_at_step_92_just_before_tail() -> None:
    """YFI-A (buf 1.30, cut 0.99 per 90 s, cusp 0.40, tail 140 min = 8400 s), one sim step = 90 s.

    price/top = 0.99^k < 0.4 first at k = 92 (ln 0.4 / ln 0.99 = 91.17; 0.99^91 = 0.40068,
    0.99^92 = 0.39668), at 92 * 90 = 8280 s, before the tail (dur > 8400 s from k = 94).
    """
    mech, book = dutch(dt_seconds=90.0, buf=1.30, cusp=0.40, tail=8400.0, tip=0.0, hole=5e6,
                       curve={"kind": "stairstep_exponential", "cut": 0.99, "step": 90.0}), one_vault()
    step(mech, book, 1700.0, 1)
    assert mech.top[0, 0] == pytest.approx(1.3 * 1700.0, rel=1e-12)
    assert not mech._done(1 + 91)[0]
    assert mech._done(1 + 92)[0]
    no_cusp = dutch(dt_seconds=90.0, cusp=0.0, tail=8400.0,
                    curve={"kind": "stairstep_exponential", "cut": 0.99, "step": 90.0})
    step(no_cusp, one_vault(), 1700.0, 1)
    assert not no_cusp._done(1 + 93)[0] and no_cusp._done(1 + 94)[0]  # the tail alone: 94 * 90 = 8460 s > 8400


# --------------------------------------------------------------------------- whole runs with one keeper


def auction_run(path: list[list[float]], **mechanism: object) -> cascadelab.RunResult:
    raw = single_position_spec(path)
    raw["protocols"]["lender"]["mechanism"] = {"kind": "dutch_auction", **mechanism}
    return cascadelab.run(raw)


def test_one_keeper_clears_at_the_first_profitable_step() -> None:
    """10 ETH, debt 15,000, LT 0.825; ETH 2000 -> 1700 at step 1 (instant oracle, no impact, no gas).

    Bark at step 1: top = 1.2 * 1700 = 2040, tab = 15,000 * 1.13 = 16,950, keeper incentive
    300 + 0.001 * 16,950 = 316.95.  The keeper's profit on the whole lot is 10 * (1700 - price), first
    positive at k = 19 cuts (2040 * 0.99^18 = 1703.22 > 1700; 2040 * 0.99^19 = 1685.384), i.e. at step 20.
    Lot value then 16,853.84 < tab: it pays 16,853.84 for all 10 ETH; debt is repaid first (15,000),
    the penalty collected is 1,853.84 of 1,950; nothing is written off.
    Keeper PnL = 17,000 - 16,853.84 + 316.95 = 463.11.
    """
    r = auction_run([[0, 2000.0], [1, 1700.0], [40, 1700.0]])
    f = r.fills
    inc = f[f["kind"] == "incentive"]
    assert list(inc["step"]) == [1] and inc["incentive"].iloc[0] == pytest.approx(316.95, rel=1e-12)
    liq = f[f["kind"] == "liquidation"]
    assert list(liq["step"]) == [20]
    assert liq["paid"].iloc[0] == pytest.approx(10 * 2040 * 0.99**19, rel=1e-12)
    assert liq["repaid"].iloc[0] == pytest.approx(15_000.0, rel=1e-12)
    assert liq["seized_ETH"].iloc[0] == pytest.approx(10.0, rel=1e-12)
    assert r.metrics["bad_debt_usd"] == 0.0
    assert r.metrics["liquidator_pnl_usd"] == pytest.approx(17_000 - 16_853.839926 + 316.95, rel=1e-9)


def test_margin_keeper_waits_for_its_margin() -> None:
    """Strategy ``margin`` 0.03: take once 1700 - p >= 0.03 p, i.e. p <= 1650.49 -> 2040 * 0.99^k:
    k >= ln(1650.49 / 2040) / ln(0.99) = 21.08 -> k = 22 (price 1635.33), step 23, three steps after
    the default keeper (step 20)."""
    raw = single_position_spec([[0, 2000.0], [1, 1700.0], [40, 1700.0]])
    raw["protocols"]["lender"]["mechanism"] = {"kind": "dutch_auction"}
    raw["liquidators"].update(strategy="margin", margin=0.03)
    liq = cascadelab.run(raw).fills.query("kind == 'liquidation'")
    assert list(liq["step"]) == [23]
    assert liq["paid"].iloc[0] / 10 == pytest.approx(2040 * 0.99**22, rel=1e-12)


def test_lot_gone_before_tab_paid_leaves_bad_debt() -> None:
    """ETH 2000 -> 1400: top 1680; first profitable at k = 19 (1680 * 0.99^19 = 1387.963 < 1400).

    The keeper pays 13,879.63 for the whole 10 ETH lot; it all repays debt; the other
    15,000 - 13,879.63 = 1,120.37 of the auctioned debt is written off when the lot is gone.
    """
    r = auction_run([[0, 2000.0], [1, 1400.0], [40, 1400.0]])
    f = r.fills
    liq = f[f["kind"] == "liquidation"]
    assert liq["repaid"].iloc[0] == pytest.approx(13_879.632880, rel=1e-9)
    wo = f[f["kind"] == "write_off"]
    assert list(wo["step"]) == [20] and list(wo["taker"]) == [PROTOCOL]
    assert r.metrics["bad_debt_usd"] == pytest.approx(15_000 - 13_879.632880, rel=1e-9)


def test_reset_after_tail_restarts_from_the_current_oracle_and_pays_the_keeper_again() -> None:
    """Nobody takes (min profit out of reach); ETH falls 1700 -> 1500 by step 50.

    Bark at step 1 (top 2040); tail 90 min = 90 steps: done at step 92 (dur 91 min > 90), redo at
    step 92 with top = 1.2 * 1500 = 1800; both calls pay 300 + 0.001 * 16,950 to the caller.
    """
    raw = single_position_spec([[0, 2000.0], [1, 1700.0], [50, 1500.0], [100, 1500.0]])
    raw["protocols"]["lender"]["mechanism"] = {"kind": "dutch_auction"}
    raw["liquidators"]["min_profit_usd"] = 1e9
    from cascadelab.model import CascadeModel
    from cascadelab.rng import run_seed
    from cascadelab.spec import load_spec

    m = CascadeModel(load_spec(raw), run_seed(1))
    for _ in range(91):
        m.step()
    assert m.mechanisms[0].top[0, 0] == pytest.approx(2040.0, rel=1e-12)
    m.step()
    assert m.mechanisms[0].top[0, 0] == pytest.approx(1800.0, rel=1e-12) and m.mechanisms[0].tic[0] == 92
    inc = m.result().fills.query("kind == 'incentive'")
    assert list(inc["step"]) == [1, 92] and inc["incentive"].to_list() == pytest.approx([316.95, 316.95])


# --------------------------------------------------------------------------- caps, partial takes, locks


def test_hole_caps_the_tab_in_auction_and_the_rest_waits() -> None:
    """hole = 10,000 DAI.  Vault A (10 ETH, debt 15,000, HF 0.935 at 1700) and B (10 ETH, 14,000, HF 1.002
    at 1700 -> unhealthy at 1650).  At 1650: A is more underwater (HF 0.9075 vs 0.9723), so A is barked
    first with dart = 10,000 / 1.13 = 8,849.56 and dink = 10 * 8,849.56 / 15,000 = 5.8997 ETH; no room
    is left for B.  At step 2 (one cut: 1980 * 0.99 = 1960.2) a keeper pays A's tab, 10,000 / 1960.2 =
    5.1015 ETH; A keeps 4.8985 ETH against 6,150.44 debt (HF 1.0842, healthy), and B gets the freed
    room: tab min(15,820, 10,000).
    """
    book = PositionBook.of(np.array([[10.0], [10.0]]), np.array([15_000.0, 14_000.0]), np.array([0.825]))
    mech = dutch(hole=10_000.0, tip=0.0, chip=0.0)
    step(mech, book, 1650.0, 1)
    assert mech.a_pos.tolist() == [0]
    assert mech.tab[0] == pytest.approx(10_000.0, rel=1e-12)
    assert mech.due[0] == pytest.approx(10_000 / 1.13, rel=1e-12)
    assert mech.lot[0, 0] == pytest.approx(10 * (10_000 / 1.13) / 15_000, rel=1e-12)
    assert book.locked.tolist() == [True, False]
    fills = step(mech, book, 1650.0, 2, take=1.0)  # take A's whole tab
    assert fills[0].paid.tolist() == pytest.approx([10_000.0])
    assert mech.a_pos.tolist() == [] and not book.locked.any()
    assert book.collateral[0, 0] == pytest.approx(10 - 10_000 / 1960.2, rel=1e-12)
    assert book.debt[0] == pytest.approx(15_000 - 10_000 / 1.13, rel=1e-12)
    step(mech, book, 1650.0, 3)
    assert mech.a_pos.tolist() == [1]
    assert mech.tab[0] == pytest.approx(10_000.0, rel=1e-12)


def test_partial_takes_repay_debt_first_and_leftover_stays_with_the_borrower() -> None:
    """Two takes of half the tab at step 2 (price 2040 * 0.99 = 2019.6): 8,475 each; the first repays 8,475
    of the 15,000 debt, the second the remaining 6,525 (and the 1,950 penalty).  Collateral taken =
    16,950 / 2019.6 = 8.3928 ETH; the other 1.6072 ETH stays in the position, closed and unlocked, debt 0.
    """
    book, mech = one_vault(), dutch()
    step(mech, book, 1700.0, 1)
    offers = mech.offers(book, np.array([1700.0, 1.0]), 2)
    bids = Bids(np.array([0, 0]), np.array([0, 1]), np.array([8_475.0, 8_475.0]))
    fills = mech.settle(book, bids, 2)
    assert offers.max_pay[0] == pytest.approx(16_950.0)
    take = fills.taker >= 0
    assert fills.repaid[take].tolist() == pytest.approx([8_475.0, 6_525.0])
    book.apply(fills)
    book.apply(mech.end_step(book, 2))
    assert book.debt[0] == 0.0 and book.collateral[0, 0] == pytest.approx(10 - 16_950 / 2019.6, rel=1e-12)
    assert mech.n_auctions == 0 and not book.locked[0]


def test_nothing_is_barked_when_no_keeper_can_transact() -> None:
    """caller = -1 (every keeper priced out by gas): no bark, no incentive, no offer."""
    book, mech = one_vault(), dutch()
    mech.caller = -1
    fills = step(mech, book, 1700.0, 1)
    assert mech.n_auctions == 0 and all(f.size == 0 for f in fills)


def test_multi_collateral_lot_is_taken_pro_rata() -> None:
    """Lot 1 A0 ($1000) + 2 A1 ($500 each), debt 1,900 (HF 0.842): top values the lot at 1.2 * 2000 = 2400,
    so paying x gets x/2400 A0 and 2x/2400 A1; max_pay = min(tab 2,147, 2,400)."""
    book = PositionBook.of(np.array([[1.0, 2.0]]), np.array([1_900.0]), np.array([0.8, 0.8]))
    mech = make(parse_config({"kind": "dutch_auction", "tip": 0.0}, "m"), 0, 2)
    px = np.array([1000.0, 500.0, 1.0])
    mech.start(np.array([0]), 1)
    offers = mech.offers(book, px, 1)
    assert offers.receive_per_pay[0] == pytest.approx([1 / 2400, 2 / 2400], rel=1e-12)
    assert offers.max_pay[0] == pytest.approx(1_900 * 1.13, rel=1e-12)  # tab 2147 < lot value at top 2400


@pytest.mark.parametrize("curve", [{"kind": "linear", "tau": 1800.0}, {"kind": "exponential", "cut": 0.999},
                                   {"kind": "stairstep_exponential", "cut": 0.9, "step": 120.0}], ids=str)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buf=st.floats(0.8, 1.5), cusp=st.floats(0.0, 0.9), tail=st.floats(60.0, 7200.0), hole=st.floats(1e3, 1e7),
       chop=st.floats(1.0, 1.3), take=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_conformance_over_parameters(curve: dict, buf: float, cusp: float, tail: float, hole: float, chop: float,
                                     take: float, seed: int) -> None:
    """The conformance suite holds over the parameter space and all three curves, with partial takes."""
    rng = np.random.default_rng(seed)
    n = 8
    book = PositionBook.of(rng.uniform(0, 50, (n, 2)), rng.uniform(0, 1e5, n), np.array([0.8, 0.6]))
    path = [np.array([2000.0 * 0.9**i, 100.0 * 0.93**i, 1.0]) for i in range(6)]
    config = parse_config({"kind": "dutch_auction", "buf": buf, "cusp": cusp, "tail": tail, "hole": hole,
                           "chop": chop, "curve": curve}, "m")

    def bidder(offers, t):  # noqa: ANN001, ANN202
        return Bids(np.arange(offers.size), np.full(offers.size, t % 3), take * offers.max_pay)

    assert exercise(lambda: make(config, 0, 2), book, path, bidder, hold_steps=40) == []
