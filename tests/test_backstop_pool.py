"""backstop_pool: Liquity offset + redistribution, Comet absorb + storefront, depositors, pool sales.

Unit tests drive the mechanism on hand-made books with an ETH oracle price and USD debt;
run tests use tests/conftest.py's single-position scenario (instant oracle, one keeper, no gas).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascadelab
from cascadelab.book import PositionBook
from cascadelab.schema import SpecError
from mechanisms.base import POOL, PROTOCOL, REDISTRIBUTION, Bids, Fills
from mechanisms.checks import check_fills, exercise
from mechanisms.registry import make, parse_config
from tests.conftest import single_position_spec
from tests.test_mechanism_properties import books

LT = 1 / 1.1  # Liquity MCR 110%


def step(mech, book: PositionBook, px: np.ndarray, t: int = 1, bids: Bids | None = None) -> list[Fills]:
    """One mechanism step: start, offers, settle (given bids), end_step; fills are applied."""
    mech.start(np.flatnonzero(book.health(np.tile(px, (len(book.protocols), 1))) < 1.0), t)
    offers = mech.offers(book, px, t)
    out = []
    for fills in (mech.settle(book, bids if bids is not None else Bids.empty(), t), None):
        fills = mech.end_step(book, t) if fills is None else fills
        assert check_fills(book, fills) == []
        book.apply(fills)
        out.append(fills)
    return out, offers


def liquity(book: PositionBook, deposits: list[float], **params: object):
    mech = make(parse_config({"kind": "backstop_pool", "depositors": len(deposits), **params}, "m"), 0, 1)
    mech.pool_for(book).deposits[:] = deposits
    return mech


def test_offset_splits_collateral_pro_rata_among_depositors() -> None:
    """Liquidated: 10 ETH at $1,600 ($16,000), debt 15,000: ICR 1.067 < 1.1.  Deposits 5k/10k/15k (30k).

    Caller: 0.5% = 0.05 ETH.  Pool repays 15,000 and gets 9.95 ETH.  Shares 1/6, 1/3, 1/2:
    deposits 5,000 - 2,500 = 2,500; 5,000; 7,500; gains 1.658333, 3.316667, 4.975 ETH.
    """
    book = PositionBook.of(np.array([[10.0], [20.0]]), np.array([15_000.0, 10_000.0]), np.array([LT]))
    mech = liquity(book, [5_000.0, 10_000.0, 15_000.0])
    (_, end), _ = step(mech, book, np.array([1600.0, 1.0]))
    assert list(end.taker) == [POOL]
    assert (end.repaid[0], end.seized[0, 0], end.to_protocol[0, 0]) == pytest.approx((15_000.0, 10.0, 0.05))
    assert mech.pool.deposits == pytest.approx([2_500.0, 5_000.0, 7_500.0])
    assert mech.pool.gains[:, 0] == pytest.approx([9.95 / 6, 9.95 / 3, 9.95 / 2])
    assert (book.debt[0], book.collateral[0, 0]) == (0.0, 0.0)
    assert mech.ledger_error() < 1e-15


def test_redistribution_when_the_pool_runs_short() -> None:
    """Pool 6,000 < debt 15,000: offset 40%; pool gets 9.95 * 0.4 = 3.98 ETH.

    Redistributed: debt 9,000 and 5.97 ETH to the healthy positions pro rata to collateral value
    (20 ETH and 10 ETH: 2/3 and 1/3): +6,000 debt / +3.98 ETH and +3,000 / +1.99 ETH.
    Total debt falls by the offset only: 30,000 - 6,000 = 24,000.
    """
    book = PositionBook.of(np.array([[10.0], [20.0], [10.0]]), np.array([15_000.0, 10_000.0, 5_000.0]),
                           np.array([LT]))
    mech = liquity(book, [6_000.0])
    (_, end), _ = step(mech, book, np.array([1600.0, 1.0]))
    assert set(end.taker) == {POOL, REDISTRIBUTION}
    assert book.debt == pytest.approx([0.0, 16_000.0, 8_000.0])
    assert book.collateral[:, 0] == pytest.approx([0.0, 23.98, 11.99])
    assert book.debt.sum() == pytest.approx(30_000.0 - 6_000.0)
    assert mech.pool.gains[0, 0] == pytest.approx(3.98)


def test_lowest_collateral_ratio_is_offset_first() -> None:
    """Two troves below MCR, pool 13,000: the one at ICR 1.0 (8 ETH / 12,800) is offset first in full;
    the one at ICR 1.067 (10 ETH / 15,000) gets the 200 left; the rest of it is redistributed."""
    book = PositionBook.of(np.array([[10.0], [8.0], [50.0]]), np.array([15_000.0, 12_800.0, 10_000.0]),
                           np.array([LT]))
    mech = liquity(book, [13_000.0])
    (_, end), _ = step(mech, book, np.array([1600.0, 1.0]))
    pool_rows = end.taker == POOL
    assert dict(zip(end.position[pool_rows], end.repaid[pool_rows], strict=True)) == pytest.approx(
        {1: 12_800.0, 0: 200.0})


def test_last_position_keeps_what_the_pool_cannot_offset() -> None:
    """Nobody to redistribute to: the pool offsets 6,000 of 15,000 (40%); 60% of the debt and of the
    collateral net of the caller's share stay on the position."""
    book = PositionBook.of(np.array([[10.0]]), np.array([15_000.0]), np.array([LT]))
    mech = liquity(book, [6_000.0])
    step(mech, book, np.array([1600.0, 1.0]))
    assert book.debt[0] == pytest.approx(9_000.0)
    assert book.collateral[0, 0] == pytest.approx(10.0 * (1 - 0.005 * 0.4) - 3.98)


def test_comet_absorb_credits_the_borrower_and_the_storefront_sells_at_the_discount() -> None:
    """10 ETH at $1,000, debt 8,000, LT 0.77: HF 0.9625.  Absorb: credit 10,000 * 0.95 - 8,000 = 1,500;
    reserves 0 - 8,000 - 1,500 = -9,500; custody 10 ETH.

    Storefront: discount 0.5 * (1 - 0.95) = 2.5%, price 975; paying 975 buys 1 ETH; reserves -8,525.
    """
    book = PositionBook.of(np.array([[10.0]]), np.array([8_000.0]), np.array([0.77]))
    mech = make(parse_config({"kind": "backstop_pool", "variant": "comet"}, "m"), 0, 1)
    px = np.array([1000.0, 1.0])
    (_, end), _ = step(mech, book, px)
    assert (end.taker[0], end.repaid[0], end.paid[0], end.seized[0, 0], end.to_protocol[0, 0]) == pytest.approx(
        (PROTOCOL, 8_000.0, 9_500.0, 10.0, 10.0))
    assert mech.pool.reserves_usd == pytest.approx(-9_500.0)
    (sale, _), offers = step(mech, book, px, t=2, bids=Bids(np.array([0]), np.array([3]), np.array([975.0])))
    assert offers.max_pay[0] == pytest.approx(9_750.0)
    assert offers.receive_per_pay[0, 0] * 975 == pytest.approx(1.0)
    assert (sale.received[0, 0], sale.seized[0, 0], sale.repaid[0]) == pytest.approx((1.0, 0.0, 0.0))
    assert mech.pool.reserves_usd == pytest.approx(-8_525.0)
    assert mech.custody[0] == pytest.approx(9.0)


def test_comet_writes_off_what_the_collateral_cannot_cover_and_stops_selling_at_target() -> None:
    """Debt 11,000 on $10,000: credit 0, written off 1,000, repaid 10,000.  Reserves 20M >= target 5M: no offers."""
    book = PositionBook.of(np.array([[10.0]]), np.array([11_000.0]), np.array([0.77]))
    mech = make(parse_config({"kind": "backstop_pool", "variant": "comet", "initial_reserves_usd": 2e7}, "m"), 0, 1)
    (_, end), _ = step(mech, book, np.array([1000.0, 1.0]))
    assert (end.repaid[0], end.paid[0], end.written_off[0]) == pytest.approx((10_000.0, 10_000.0, 1_000.0))
    _, offers = step(mech, book, np.array([1000.0, 1.0]), t=2)
    assert offers.size == 0


def test_comet_run_splits_the_penalty_between_buyer_and_reserves() -> None:
    """10 ETH, debt 15,000, LT 0.825, gap to 1,700 (HF 0.935).  Absorb: V 17,000, credit 16,150 - 15,000
    = 1,150, so the borrower loses 17,000 * (1 - 0.95) = 850.  The keeper buys all 10 ETH at
    1,700 * 0.975 = 1,657.5 and sells at 1,700: PnL 425 = 2.5% of 17,000; reserves end at
    -15,000 - 1,150 + 16,575 = 425, the other half of the penalty."""
    r = cascadelab.run(single_position_spec([[0, 2000.0], [1, 1700.0], [4, 1700.0]],
                                            mechanism={"kind": "backstop_pool", "variant": "comet"}))
    m = r.metrics
    assert m["borrower_loss_usd"] == pytest.approx(850.0, rel=1e-9)
    assert m["liquidator_pnl_usd"] == pytest.approx(425.0, rel=1e-9)
    assert m["bad_debt_usd"] == 0.0
    assert r.timeseries["pool_balance_usd_lender"].iloc[-1] == pytest.approx(425.0, rel=1e-9)
    assert (r.fills["kind"] == "sale").sum() >= 1


def two_step_liquity(withdraw_prob: float) -> cascadelab.RunResult:
    """alice (10 ETH / 15,000) fails at step 1 (price 1,600); bob (10 ETH / 12,000) at step 3 (price 1,300);
    carol (100 ETH / 10,000) stays healthy.  Pool: 100% of the initial debt (37,000), 2 depositors."""
    raw = single_position_spec([[0, 2000.0], [1, 1600.0], [2, 1600.0], [3, 1300.0], [5, 1300.0]], lt=LT,
                               mechanism={"kind": "backstop_pool", "deposit_share": 1.0, "depositors": 2,
                                          "withdraw_drop": 0.1, "withdraw_prob": withdraw_prob})
    raw["positions"] += [{"protocol": "lender", "collateral": {"ETH": 10.0}, "debt": 12_000.0, "name": "bob"},
                         {"protocol": "lender", "collateral": {"ETH": 100.0}, "debt": 10_000.0, "name": "carol"}]
    return cascadelab.run(raw)


def test_depositors_who_leave_under_stress_empty_the_pool() -> None:
    """With withdraw_prob 1 both depositors leave at step 1 (price 20% down >= 10%) after alice's offset;
    bob is redistributed to carol at step 3.  With withdraw_prob 0 the pool offsets bob too."""
    stay, leave = two_step_liquity(0.0), two_step_liquity(1.0)
    bob = 1
    assert set(stay.fills.loc[stay.fills["position"] == bob, "taker"]) == {POOL}
    assert REDISTRIBUTION in set(leave.fills.loc[leave.fills["position"] == bob, "taker"])
    assert leave.timeseries["pool_balance_usd_lender"].iloc[1:].max() == 0.0
    assert stay.timeseries["pool_balance_usd_lender"].iloc[-1] == pytest.approx(37_000 - 15_000 - 12_000)


def test_twap_pool_sales_move_the_price_under_their_own_source() -> None:
    """Liquity pool (deposits = the debt) with sell="twap", sell_fraction 0.5, on a constant-product venue ($10M at 2000,
    L = 1e7 / (2 sqrt 2000), fee 0): at step 1 the pool sells half of its 9.95 ETH at the
    fundamental 1,600, so z = 2 ln(x / (x + q)) with x = L / sqrt(1600) and q = 4.975."""
    raw = single_position_spec([[0, 2000.0], [1, 1600.0], [3, 1600.0]], lt=LT, venue="constant_product",
                               mechanism={"kind": "backstop_pool", "sell": "twap", "sell_fraction": 0.5,
                                          "deposit_share": 1.0})
    r = cascadelab.run(raw)
    x = 1e7 / (2 * math.sqrt(2000)) / math.sqrt(1600)
    assert r.timeseries.loc[1, "z_ETH_pool:lender"] == pytest.approx(2 * math.log(x / (x + 4.975)), rel=1e-9)
    assert r.timeseries.loc[1, "z_ETH_liq:lender"] == 0.0
    held = r.timeseries["pool_collateral_usd_lender"] / r.timeseries["market_ETH"]
    assert held.iloc[1:3].to_numpy() == pytest.approx([4.975, 2.4875], rel=1e-9)


def test_storefront_needs_the_comet_variant() -> None:
    with pytest.raises(SpecError, match=r"m\.sell"):
        parse_config({"kind": "backstop_pool", "sell": "storefront"}, "m")


def test_a_negative_protocol_share_is_only_a_custody_sale() -> None:
    """check_fills accepts collateral handed out of custody to a keeper, nothing else with to_protocol < 0."""
    book = PositionBook.of(np.array([[1.0]]), np.array([0.0]), np.array([0.8]))
    sale = Fills.make(np.array([0]), 0, 1, repaid=0.0, paid=np.array([10.0]), to_protocol=np.array([[-1.0]]))
    assert check_fills(book, sale) == []
    bad = Fills.make(np.array([0]), 0, 1, repaid=0.0, paid=np.array([10.0]), seized=np.array([[0.5]]),
                     to_protocol=np.array([[-1.0]]))
    assert check_fills(book, bad) != []


def test_a_liquidated_position_never_takes_on_redistributed_debt() -> None:
    """Offset 100 of a position's debt and hand it 200 back through a redistribution: rejected."""
    book = PositionBook.of(np.array([[1.0], [1.0]]), np.array([500.0, 500.0]), np.array([0.8]))
    fills = Fills.concat([Fills.make(np.array([0]), POOL, 1, repaid=100.0),
                          Fills.make(np.array([0, 1]), REDISTRIBUTION, 1, repaid=np.array([-200.0, 100.0]))], 1)
    assert "a liquidated position's debt rose" in check_fills(book, fills)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant=st.sampled_from(["liquity", "comet"]), share=st.floats(0.0, 2.0), comp=st.floats(0.0, 0.1),
       factor=st.floats(0.5, 1.0), case=books())
def test_backstop_any_parameters(variant: str, share: float, comp: float, factor: float,
                                 case: tuple[PositionBook, list[np.ndarray]]) -> None:
    """The conformance suite over pool sizes (so redistribution happens), caller shares and absorb factors."""
    book, path = case
    config = parse_config({"kind": "backstop_pool", "variant": variant, "deposit_share": share,
                           "caller_comp": comp, "liquidation_factor": factor}, "m")
    assert exercise(lambda: make(config, 0, book.n_assets), book, path) == []
