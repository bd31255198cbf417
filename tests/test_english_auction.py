"""Maker Liq 1.x English auction: bite into lots, tend/dent rules, deal/tick, capital lock, the zero-bid win.

Reference: shared/reference/mechanisms.md sections 3.2 (Cat + Flipper) and 7.1 (Black Thursday).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascadelab
from cascadelab.book import PositionBook
from cascadelab.cli import main
from cascadelab.model import CascadeModel
from cascadelab.rng import run_seed
from cascadelab.spec import load_spec
from mechanisms.auctions import NOBODY, AuctionBids
from mechanisms.checks import exercise
from mechanisms.english_auction import EnglishAuction
from mechanisms.registry import make, parse_config
from tests.conftest import single_position_spec

TAB = 15_000 * 1.13  # 16,950: the tab of the 10 ETH / 15,000 DAI vault


def english(**params: object) -> EnglishAuction:
    mech = make(parse_config({"kind": "english_auction", **params}, "m"), 0, 1, 60.0)
    assert isinstance(mech, EnglishAuction)
    return mech


def bite(book: PositionBook, mech: EnglishAuction, px: float, t: int = 1) -> None:
    p = np.array([px, 1.0])
    mech.start(np.flatnonzero(book.health(p[None, :]) < 1.0), t)
    mech.offers(book, p, t)


def bid(mech: EnglishAuction, book: PositionBook, t: int, keeper: int, pay: float, lot: float | None = None,
        offer: int = 0) -> bool:
    """One bid on offer ``offer`` at step t; True if it now stands."""
    offers = mech.offers(book, np.array([1700.0, 1.0]), t)
    lot_arr = offers.lot[[offer]] if lot is None else np.array([[lot]])
    mech.settle(book, AuctionBids(np.array([offer]), np.array([keeper]), np.array([pay]), lot_arr), t)
    a = offers.auction[offer]
    return bool(mech.guy[a] == keeper and mech.bid[a] == pay and mech.lot[a, 0] == lot_arr[0, 0])


def one_vault() -> PositionBook:
    return PositionBook.of(np.array([[10.0]]), np.array([15_000.0]), np.array([0.825]))


# --------------------------------------------------------------------------- Cat.bite


def test_bite_cuts_a_large_vault_into_lump_lots() -> None:
    """120 ETH, debt 200,000, LT 0.825 at 1500 (HF 0.7425); lump 50: lots 50, 50, 20 ETH with debt
    200,000 * lot / 120 = 83,333.33, 83,333.33, 33,333.33 and tab = 1.13 * that; bid 0, no bidder,
    end = 60 s + 6 h."""
    book = PositionBook.of(np.array([[120.0]]), np.array([200_000.0]), np.array([0.825]))
    mech = english()
    bite(book, mech, 1500.0)
    assert mech.lot[:, 0] == pytest.approx([50.0, 50.0, 20.0], rel=1e-12)
    assert mech.due == pytest.approx([200_000 * 50 / 120, 200_000 * 50 / 120, 200_000 * 20 / 120], rel=1e-12)
    assert mech.tab == pytest.approx(1.13 * mech.due, rel=1e-12)
    assert (mech.bid == 0).all() and (mech.guy == NOBODY).all() and (mech.end == 60.0 + 21_600.0).all()
    assert book.locked[0]


def test_bite_of_a_dust_vault_is_one_lot() -> None:
    """A vault holding 5e-324 ETH (the smallest float) and 1 of debt: lump / ink overflows to inf, which
    means one lot of the whole vault (found by the conformance suite; it used to raise an overflow warning)."""
    book = PositionBook.of(np.array([[5e-324]]), np.array([1.0]), np.array([0.5]))
    mech = english()
    bite(book, mech, 1.0)
    assert mech.n_auctions == 1 and mech.lot[0, 0] == 5e-324 and mech.tab[0] == pytest.approx(1.13)


def test_liq_1_2_box_and_dunk_cap_the_tab_in_auction() -> None:
    """box 100,000: lot 1 (tab 94,166.67) fits, lot 2 gets the 5,833.33 left (3.0973 ETH of its 50), lot 3
    waits.  dunk 50,000 instead: each lot's tab <= 50,000, a share 50,000 / (1.13 * 200,000) = 0.22124
    of the vault: 26.549 ETH per lot, 5 lots (4 x 0.22124 + 0.11504)."""
    book = PositionBook.of(np.array([[120.0]]), np.array([200_000.0]), np.array([0.825]))
    boxed = english(box=100_000.0)
    bite(book, boxed, 1500.0)
    assert boxed.tab == pytest.approx([1.13 * 200_000 * 50 / 120, 100_000 - 1.13 * 200_000 * 50 / 120], rel=1e-12)
    assert boxed.lot[1, 0] == pytest.approx(50 * boxed.tab[1] / boxed.tab[0], rel=1e-12)
    dunked = english(dunk=50_000.0)
    bite(PositionBook.of(np.array([[120.0]]), np.array([200_000.0]), np.array([0.825])), dunked, 1500.0)
    share = 50_000 / (1.13 * 200_000)
    assert dunked.lot[:, 0] == pytest.approx([120 * share] * 4 + [120 * (1 - 4 * share)], rel=1e-12)
    assert dunked.tab[:4] == pytest.approx([50_000.0] * 4, rel=1e-12)


# --------------------------------------------------------------------------- Flipper rules


def test_tend_and_dent_increments() -> None:
    """10 ETH lot, tab 16,950, beg 1.03 (one bid per step, each checked against the last).

    tend: 0 (first bid may be zero) ok; 1,000 ok; 1,020 < 1.03 * 1,000 refused; 1,030 ok; 16,500 ok;
    tab + 1 refused; 16,950 = tab ok although < 1.03 * 16,500 = 16,995 (bid == tab is always allowed).
    dent: lot 9.8 refused (9.8 * 1.03 = 10.094 > 10); 9.7 ok (9.991); 9.5 refused (9.785 > 9.7);
    a dent that changes the bid refused; 9.4 ok (9.682).
    """
    book, mech = one_vault(), english()
    bite(book, mech, 1700.0)
    steps = [(0, 0.0, None, True), (1, 1_000.0, None, True), (0, 1_020.0, None, False), (0, 1_030.0, None, True),
             (1, 16_500.0, None, True), (0, TAB + 1, None, False), (0, TAB, None, True),
             (1, TAB, 9.8, False), (1, TAB, 9.7, True), (0, TAB, 9.5, False), (0, TAB - 1, 9.4, False),
             (0, TAB, 9.4, True)]
    for t, (keeper, pay, lot, stands) in enumerate(steps, start=2):
        assert bid(mech, book, t, keeper, pay, lot) is stands, (t, keeper, pay, lot)
    assert mech.tic[0] == 13 * 60.0 + 600.0  # the last accepted bid (step 13) + ttl


def test_same_bids_in_one_step_are_checked_in_order() -> None:
    """The sequence above submitted in one step gives the same standing bid (invalid ones in the middle
    are skipped and later bids are checked against the last valid one)."""
    book, mech = one_vault(), english()
    bite(book, mech, 1700.0)
    mech.offers(book, np.array([1700.0, 1.0]), 2)
    pays = [0.0, 1_000.0, 1_020.0, 1_030.0, 16_500.0, TAB + 1, TAB, TAB, TAB, TAB, TAB - 1, TAB]
    lots = [10.0] * 7 + [9.8, 9.7, 9.5, 9.4, 9.4]
    bids = AuctionBids(np.zeros(12, dtype=np.int64), np.array([0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0]),
                       np.array(pays), np.array(lots)[:, None])
    mech.settle(book, bids, 2)
    assert (mech.guy[0], mech.bid[0], mech.lot[0, 0]) == (0, TAB, 9.4)


def test_deal_after_ttl_pays_the_bid_and_returns_the_dented_collateral() -> None:
    """Bid tab at step 2, dent to 9.4 ETH at step 3 (tic = 180 + 600 = 780 s): no deal at step 13 (780 s is
    not yet passed), deal at step 14: the winner pays 16,950, repaying all 15,000 of debt, takes 9.4 ETH;
    0.6 ETH stays with the borrower, nothing written off, the vault unlocked."""
    book, mech = one_vault(), english()
    bite(book, mech, 1700.0)
    assert bid(mech, book, 2, 0, TAB) and bid(mech, book, 3, 1, TAB, 9.4)
    assert mech.end_step(book, 13).size == 0
    fills = mech.end_step(book, 14)
    assert fills.taker.tolist() == [1] and fills.paid.tolist() == [TAB]
    assert fills.repaid.tolist() == [15_000.0] and fills.seized[:, 0].tolist() == [9.4]
    assert fills.written_off.tolist() == [0.0]
    book.apply(fills)
    assert book.collateral[0, 0] == pytest.approx(0.6) and book.debt[0] == 0.0 and not book.locked[0]


def test_a_bid_below_the_debt_leaves_the_rest_as_bad_debt() -> None:
    """Tend phase ends at 12,000 < debt 15,000: the whole lot goes for 12,000; 3,000 is written off."""
    book, mech = one_vault(), english()
    bite(book, mech, 1700.0)
    assert bid(mech, book, 2, 0, 12_000.0)
    fills = mech.end_step(book, 13)
    assert fills.repaid.tolist() == [12_000.0] and fills.written_off.tolist() == [3_000.0]
    assert fills.seized[:, 0].tolist() == [10.0]


def test_tick_restarts_an_auction_nobody_bid_on() -> None:
    """tau 600 s: kicked at step 1 (end 660 s); at step 12 (720 s) it has ended without a bid: tick sets
    end = 720 + 600 = 1320 s and nothing is dealt."""
    book, mech = one_vault(), english(tau=600.0)
    bite(book, mech, 1700.0)
    assert mech.end_step(book, 11).size == 0 and mech.end[0] == 660.0
    assert mech.end_step(book, 12).size == 0 and mech.end[0] == 1_320.0
    assert mech.n_auctions == 1


def test_standing_bids_are_committed_capital() -> None:
    """Keeper 0 holds 1,000 and keeper 1 nothing; once keeper 1 outbids with 1,030, keeper 0's lock is released."""
    book, mech = one_vault(), english()
    bite(book, mech, 1700.0)
    bid(mech, book, 2, 0, 1_000.0)
    assert (mech.committed(0), mech.committed(1)) == (1_000.0, 0.0)
    bid(mech, book, 3, 1, 1_030.0)
    assert (mech.committed(0), mech.committed(1)) == (0.0, 1_030.0)


# --------------------------------------------------------------------------- keepers in whole runs


def english_model(keepers: int = 1, strategy: str = "default", capital: float = 1e9,
                  positions: int = 1) -> CascadeModel:
    raw = single_position_spec([[0, 2000.0], [1, 1700.0], [40, 1700.0]])
    raw["protocols"]["lender"]["mechanism"] = {"kind": "english_auction"}
    raw["positions"] = raw["positions"] * positions
    raw["liquidators"].update(count=keepers, strategy=strategy, capital_usd=capital, max_gas_gwei=100.0)
    raw["gas"] = {"base_gwei": 50.0}
    return CascadeModel(load_spec(raw), run_seed(1))


def test_zero_bid_wins_when_nobody_else_can_bid() -> None:
    """Black Thursday: the only keeper that can get included opens at 0 DAI; nobody outbids within ttl.

    Bite and bid at step 1 (tic = 60 + 600 = 660 s); deal at step 12 (720 s): the keeper takes the whole
    10 ETH lot for 0, the 15,000 of debt is written off (bad debt), the keeper gains 10 * 1700 = 17,000.
    The second keeper exists but cannot transact (its gas cap 20 gwei < 50 gwei).
    """
    m = english_model(keepers=2, strategy="lowball")
    priced_out = m.keepers[1]
    priced_out.config = replace(priced_out.config, max_gas_gwei=20.0)
    r = m.run().result()
    liq = r.fills.query("kind == 'liquidation'")
    assert list(liq["step"]) == [12] and list(liq["taker"]) == [0]
    assert liq["paid"].iloc[0] == 0.0 and liq["seized_ETH"].iloc[0] == 10.0
    assert liq["written_off"].iloc[0] == 15_000.0
    assert r.metrics["bad_debt_usd"] == 15_000.0
    assert r.metrics["liquidator_pnl_usd"] == pytest.approx(17_000.0, rel=1e-12)


def test_a_second_keeper_that_can_bid_removes_the_zero_bid() -> None:
    """Same, but the second keeper can transact and bids its valuation (default strategy): whoever moves
    first, the default keeper values the lot at 10 * 1700 = 17,000 >= tab and bids tab = 16,950; the
    lowball keeper cannot dent (it would need 16,950 / 17,000 = 99.7% of the lot, more than lot / 1.03).
    The debt is repaid in full; no bad debt."""
    m = english_model(keepers=2, strategy="lowball")
    m.keepers[1].config = replace(m.keepers[1].config, strategy="default")
    r = m.run().result()
    liq = r.fills.query("kind == 'liquidation'")
    assert liq["paid"].tolist() == [TAB] and liq["repaid"].tolist() == [15_000.0] and liq["taker"].tolist() == [1]
    assert r.metrics["bad_debt_usd"] == 0.0


def test_lowball_keepers_leave_each_others_zero_bids_alone() -> None:
    """Two lowball keepers that can both transact (the record's four zero-bid addresses won ~62,890 ETH
    between them, mechanisms.md 7.1): one opens at 0, the other does not raise it (a raise over 0 would
    only trade 1-wei bids and restart ttl), so the lot is dealt at step 12 for 0 and the 15,000 of debt
    is written off."""
    r = english_model(keepers=2, strategy="lowball").run().result()
    liq = r.fills.query("kind == 'liquidation'")
    assert liq["step"].tolist() == [12] and liq["paid"].tolist() == [0.0]
    assert r.metrics["bad_debt_usd"] == 15_000.0


def test_lowball_keeper_raises_a_positive_bid_by_the_minimum() -> None:
    """Against a positive bid a lowball keeper bids min(beg * bid, tab) while that is within its maximum.

    A default keeper that wants 1,000 of profit (latency 0) bids b0 = 17,000 - 1,000 = 16,000 at step 1;
    the lowball keeper (min profit 0, latency 1) sees the auction at step 2 and raises to 1.03 * b0 =
    16,480 <= 16,950 (tab, its own maximum).  The default keeper would need 1.03 * 16,480 = 16,974.4 >
    16,000 to raise again, so the lowball bid stands: dealt at step 13 (tic = 120 + 600 s), the
    15,000 of debt repaid.
    """
    m = english_model(keepers=2, strategy="lowball")
    m.keepers[0].config = replace(m.keepers[0].config, strategy="default", min_profit_usd=1_000.0)
    m.keepers[1].config = replace(m.keepers[1].config, latency_steps=1)
    m.step()
    mech = m.mechanisms[0]
    b0 = float(mech.bid[0])
    assert mech.guy.tolist() == [0] and b0 == pytest.approx(16_000.0, rel=1e-9)
    m.step()
    assert mech.guy.tolist() == [1] and mech.bid[0] == 1.03 * b0
    r = m.run().result()
    liq = r.fills.query("kind == 'liquidation'")
    assert liq["step"].tolist() == [13] and liq["taker"].tolist() == [1]
    assert liq["paid"].tolist() == [1.03 * b0] and liq["repaid"].tolist() == [15_000.0]


def test_capital_locked_in_a_standing_bid_is_not_available_until_dealt() -> None:
    """Two identical vaults, one keeper with 20,000 of capital.  It bids tab 16,950 on the first lot at
    step 1; its free capital is then 3,050, so it cannot bid on the second until the first is dealt at
    step 12 (sold for 17,000: capital 20,050).  It bids on the second at step 13, dealt at step 24."""
    m = english_model(capital=20_000.0, positions=2)
    for _ in range(5):
        m.step()
    keeper = m.keepers[0]
    assert keeper.free_capital() == pytest.approx(20_000 - TAB, rel=1e-12)
    assert m.mechanisms[0].guy.tolist() == [0, NOBODY]
    r = m.run().result()
    assert list(r.fills.query("kind == 'liquidation'")["step"]) == [12, 24]
    assert keeper.capital == pytest.approx(20_000 + 2 * (17_000 - TAB), rel=1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lump=st.floats(0.5, 80.0), beg=st.floats(1.0, 1.2), ttl=st.floats(30.0, 1200.0), tau=st.floats(120.0, 30_000.0),
       box=st.floats(1e3, 1e7), chop=st.floats(1.0, 1.3), seed=st.integers(0, 2**16))
def test_conformance_over_parameters(lump: float, beg: float, ttl: float, tau: float, box: float, chop: float,
                                     seed: int) -> None:
    """The conformance suite (with the tend-into-dent bidder of mechanisms/checks.py) over the parameter space."""
    rng = np.random.default_rng(seed)
    book = PositionBook.of(rng.uniform(0, 200, (6, 2)), rng.uniform(0, 4e5, 6), np.array([0.8, 0.6]))
    path = [np.array([2000.0 * 0.9**i, 100.0 * 0.93**i, 1.0]) for i in range(5)]
    config = parse_config({"kind": "english_auction", "lump": lump, "beg": beg, "ttl": ttl, "tau": tau, "box": box,
                           "chop": chop}, "m")
    assert exercise(lambda: make(config, 0, 2), book, path, hold_steps=60) == []


# --------------------------------------------------------------------------- the default scenario


@pytest.mark.parametrize("kind", ["english_auction", "dutch_auction"])
def test_default_scenario_runs_with_an_inline_mechanism_override(kind: str, capsys: pytest.CaptureFixture[str]
                                                                 ) -> None:
    """``--set protocols.lender_b.mechanism='{kind="..."}'`` (an inline TOML table) swaps the mechanism in."""
    assert main(["run", "--set", f'protocols.lender_b.mechanism={{kind="{kind}"}}', "--set", "run.steps=300",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["per_protocol"]["lender_b"]["liquidation_count"] > 0
    assert max(out["checks"].values()) < 1e-9


def test_nested_curve_override() -> None:
    """A nested inline table picks the curve: {kind="dutch_auction", curve={kind="linear", tau=3600}}."""
    spec = load_spec(None, ['protocols.lender_b.mechanism={kind="dutch_auction", curve={kind="linear", tau=3600}}'])
    assert spec.protocols["lender_b"].mechanism.curve.tau == 3600.0
    r = cascadelab.run(spec, overrides={"run.steps": 120})
    assert np.isfinite(list(r.metrics.values())).all()


def test_closed_form_max_cost_matches_bisection() -> None:
    """The closed-form inverse of each built-in profit rule equals the bisection it replaces."""
    import numpy as np

    from agents import auction_bidders
    from agents.liquidators import MAX_COST, STRATEGIES
    from cascadelab.spec import KeeperConfig

    value = np.array([-50.0, 0.0, 3.0, 10.0, 250.0, 1e6])
    for strategy in ("default", "margin"):
        cfg = KeeperConfig(min_profit_usd=5.0, margin=0.02, strategy=strategy)

        class Keeper:
            config, rule = cfg, STRATEGIES[strategy]

        closed = auction_bidders.max_cost(Keeper, value)
        saved = MAX_COST.pop(Keeper.rule)
        try:
            bisected = auction_bidders.max_cost(Keeper, value)
        finally:
            MAX_COST[Keeper.rule] = saved
        np.testing.assert_allclose(closed, bisected, rtol=1e-12, atol=1e-9)
        assert (closed[value < 5.0] == -1.0).all()
