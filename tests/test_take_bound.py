"""The take bound (cascadelab/take_bound.py): a round skipped because no keeper would take anything.

Each piece is checked against the exact computation it stands in for: the venues' marginal
price against their quotes, the fixed-bonus ceiling against the offers rebuilt at the new
prices, and every proof the model relies on against the keepers asked anyway.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cascadelab
import cascadelab.model as model_module
from agents.liquidators import Liquidator
from cascadelab.book import PositionBook
from cascadelab.market.venues import Venue
from cascadelab.spec import VenueConfig
from mechanisms.base import Fills
from mechanisms.registry import make, parse_config

VENUES = [("constant_product", "linear"), ("transient_impact", "linear"), ("transient_impact", "sqrt"),
          ("none", "linear")]


@pytest.mark.parametrize(("kind", "impact"), VENUES)
@settings(max_examples=60, deadline=None)
@given(z=st.floats(-0.8, 0.3), qty=st.lists(st.floats(0.0, 2e4), min_size=2, max_size=6),
       fundamental=st.floats(50.0, 5000.0))
def test_marginal_sell_is_the_slope_of_the_quotes_and_never_rises(kind: str, impact: str, z: float,
                                                                   qty: list[float], fundamental: float) -> None:
    """The tangent bound needs the exact slope of quote_sell, and concave proceeds (a slope that never rises)."""
    venue = Venue(VenueConfig(kind=kind, depth_usd=2e7, fee=0.003, recovery_halflife_steps=10, impact=impact),
                  2000.0, 1)
    venue.z = z
    q = np.sort(np.array(qty))
    slope = venue.marginal_sell(q, fundamental)
    assert np.all(np.diff(slope) <= 1e-12 * slope[:-1])
    h = 1e-2 * np.maximum(q, 100.0)  # wide enough that the quotes' rounding (~1e-16 of the curve's scale) is small
    lo = np.maximum(q - h, 0.0)
    numeric = (venue.quote_sell(q + h, fundamental) - venue.quote_sell(lo, fundamental)) / (q + h - lo)
    # a secant's slope lies between the slopes at its two ends (concavity), up to rounding
    assert np.all(numeric <= venue.marginal_sell(lo, fundamental) * (1 + 1e-7))
    assert np.all(numeric >= venue.marginal_sell(q + h, fundamental) * (1 - 1e-7))


@settings(max_examples=300, deadline=None)
@given(z=st.floats(-0.8, 0.3), fundamental=st.floats(50.0, 5000.0), largest=st.floats(1e-3, 3e4),
       share=st.floats(0.0, 1.0), r=st.floats(0.7, 1.4), gamma=st.floats(0.7, 1.4), mu=st.floats(1.0, 1.3))
def test_constant_product_growth_bounds_every_clip_up_to_the_largest(z: float, fundamental: float, largest: float,
                                                                     share: float, r: float, gamma: float,
                                                                     mu: float) -> None:
    """A clip of pay x <= mu M receiving gamma times the units per unit paid, sold after the pool's price moved
    by r: its proceeds over those of the same pay before stay within the factor the re-check uses; and the
    factor is tight for the largest clip (it is the exact ratio there, so a looser formula would show)."""
    from cascadelab.take_bound import constant_product_growth

    venue = Venue(VenueConfig(kind="constant_product", depth_usd=2e7, fee=0.003, recovery_halflife_steps=10),
                  2000.0, 1)
    venue.z = z
    price = fundamental * np.exp(z)
    q = venue.size_ratio(largest, price)
    units = np.array([share * mu * largest, mu * largest])  # units of two clips at the old receive rate
    before = venue.quote_sell(units, fundamental)
    after = venue.quote_sell(gamma * units, fundamental * r)  # the fundamental moved by r, z unchanged
    kappa = constant_product_growth(r, gamma, mu * q)
    assert np.all(after <= kappa * before * (1 + 1e-12))
    assert kappa <= max(r * gamma, after[1] / before[1], 1.0) * (1 + 1e-9)  # the ratio's ends: no looser


@st.composite
def books_and_moves(draw: st.DrawFn) -> tuple[PositionBook, np.ndarray, np.ndarray, dict]:
    """One protocol, 1-2 collateral assets, USD or priced debt, positions near the rules' thresholds."""
    n_assets = draw(st.integers(1, 2))
    n = draw(st.integers(1, 25))
    coll = np.array(draw(st.lists(st.lists(st.floats(0.0, 50.0), min_size=n_assets, max_size=n_assets),
                                  min_size=n, max_size=n)))
    debt = np.array(draw(st.lists(st.floats(10.0, 8e4), min_size=n, max_size=n)))
    lt = np.array([draw(st.lists(st.sampled_from([0.0, 0.8, 0.9]), min_size=n_assets, max_size=n_assets))])
    priced = draw(st.booleans())
    book = PositionBook.of(coll, debt, lt, protocol=np.zeros(n, dtype=np.int64),
                           debt_asset=np.array([0 if priced else n_assets]))
    px0 = np.array(draw(st.lists(st.floats(100.0, 3000.0), min_size=n_assets, max_size=n_assets)) + [1.0])
    moves = np.array(draw(st.lists(st.floats(0.8, 1.25), min_size=n_assets, max_size=n_assets)) + [1.0])
    cfg = draw(st.sampled_from([{"preset": "aave_v3"}, {"preset": "compound_v2"}, {"preset": "textbook"},
                                {"preset": "aave_v3", "close_factor": 1.0}]))
    return book, px0, px0 * moves, cfg


@settings(max_examples=300, deadline=None)
@given(case=books_and_moves())
def test_the_fixed_bonus_ceiling_bounds_the_offers_rebuilt_at_new_prices(case: tuple) -> None:
    """Whenever offer_ceiling answers, every offer built from scratch at the new prices pays and receives
    no more than its row of the ceiling (within rounding)."""
    book, px0, px1, cfg = case
    liquidatable = np.flatnonzero(book.health(px0[None, :]) < 1.0)
    built = make(parse_config({"kind": "fixed_bonus", **cfg}, "m"), 0, book.n_assets)
    built.start(liquidatable, 0)
    built.offers(book, px0, 0)
    ceiling = built.offer_ceiling(book, px1)
    fresh = make(parse_config({"kind": "fixed_bonus", **cfg}, "m"), 0, book.n_assets)
    fresh.start(liquidatable, 0)
    offers = fresh.offers(book, px1, 0)
    if ceiling is None:
        return
    rows = np.searchsorted(liquidatable[book.debt[liquidatable] > 0], offers.position)
    assert np.all(offers.max_pay <= ceiling.max_pay[rows] * (1 + 1e-12) + 1e-300)
    # subnormal amounts are rounded wildly (not relatively), but what they can hand over (the largest
    # clip's units) is as small, and the proof's allowance is in USD
    units = offers.max_pay[:, None] * offers.receive_per_pay
    assert np.all(units <= ceiling.max_pay[rows, None] * ceiling.receive_per_pay[rows] * (1 + 1e-12) + 1e-300)
    normal = (book.collateral[offers.position] > 1e-300) & (book.collateral[offers.position] @ px1[:-1] > 1e-300)[:, None]
    assert np.all((offers.receive_per_pay <= ceiling.receive_per_pay[rows] * (1 + 1e-12)) | ~normal)


def test_the_ceiling_refuses_a_switch_to_full_close_and_a_changed_position() -> None:
    """Aave's 0.95 switch doubles what may be paid, so a price move that may cross it voids the ceiling;
    so does any change to a liquidatable position's row."""
    book = PositionBook.of(np.array([[10.0]]), np.array([16_000.0]), np.array([[0.8]]),
                           protocol=np.zeros(1, dtype=np.int64), debt_asset=np.array([1]))
    px = np.array([1950.0, 1.0])  # health 0.975: liquidatable, close factor 50%
    mech = make(parse_config({"kind": "fixed_bonus"}, "m"), 0, 1)
    mech.start(np.array([0]), 0)
    mech.offers(book, px, 0)
    assert mech.offer_ceiling(book, px * [0.99, 1.0]) is not None  # health 0.965: still 50%
    assert mech.offer_ceiling(book, px * [0.97, 1.0]) is None  # health 0.946 <= 0.95: 100% possible
    book.apply(Fills.make(np.array([0]), 0, 1, repaid=1_000.0))  # someone repaid part of the debt
    assert mech.offer_ceiling(book, px) is None


SCENARIOS = {
    "reference_min_profit": ("experiments/scenarios/reference_crash.toml",
                             {"liquidators.min_profit_usd": 100.0, "liquidators.capital_usd": 3e5,
                              "protocols.lender.mechanism.bonus": 0.08, "protocols.lender.mechanism.close_factor": 0.6,
                              "venues.ETH.depth_usd": 2.2e7, "venues.ETH.recovery_halflife_steps": 30.0,
                              "run.steps": 700}),
    "default_aave_rules": (None, {"run.steps": 700, "populations.a_passive.count": 600,
                                  "populations.a_active.count": 300, "populations.b_passive.count": 600,
                                  "liquidators.min_profit_usd": 60.0}),
    "transient_sqrt_priced_gas": (None, {"run.steps": 600, "populations.a_passive.count": 600,
                                         "populations.b_passive.count": 600, "venues.ETH.kind": "transient_impact",
                                         "venues.ETH.impact": "sqrt", "venues.ETH.depth_usd": 3e7,
                                         "liquidators.min_profit_usd": 40.0, "gas.token_price_usd": 2000.0}),
    "two_assets": ("experiments/scenarios/eth_steth.toml", {"liquidators.min_profit_usd": 80.0}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_round_the_model_skips_is_one_no_keeper_would_take_anything_in(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Each time the proof holds, the offers are built anyway and every keeper is asked at that moment
    (on copies, the mechanism's state restored after): none bids.  The runs also hold rounds with bids,
    so the check tells the two apart."""
    scenario, overrides = SCENARIOS[name]
    real = model_module.CascadeModel._nobody_takes
    proved, bid_rounds = [], []

    def asked_anyway(self: model_module.CascadeModel, p: int, mech) -> bool:
        holds = real(self, p, mech)
        if holds:
            saved = dict(mech.__dict__)
            offers = mech.offers(self.book, self.oracle_px[p], self.t)
            remaining = offers.max_pay.copy()
            for k in self.keepers:
                fills, needs, empty = k.fills_this_step, k.needs_capital, k.window_was_empty
                bids, _ = Liquidator.bid(k, p, offers, remaining, self.t)
                assert bids.size == 0, (self.t, k.index)
                k.fills_this_step, k.needs_capital, k.window_was_empty = fills, needs, empty
            mech.__dict__.clear()
            mech.__dict__.update(saved)
            proved.append(offers.size)
        return holds

    real_bids = model_module.CascadeModel._linear_bids

    def counted(self, p, keepers, offers, t):
        bids, found = real_bids(self, p, keepers, offers, t)
        bid_rounds.append(bids.size)
        return bids, found

    monkeypatch.setattr(model_module.CascadeModel, "_nobody_takes", asked_anyway)
    monkeypatch.setattr(model_module.CascadeModel, "_linear_bids", counted)
    spec = cascadelab.load_spec(scenario) if scenario else None
    cascadelab.run(spec, overrides=overrides)
    assert sum(n > 0 for n in proved) >= 20  # proofs over real offers, not only empty sets
    assert sum(n > 0 for n in bid_rounds) >= 5


def test_skipped_rounds_change_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same run with the proof switched off gives the same metrics and fills, bit for bit."""
    scenario, overrides = SCENARIOS["reference_min_profit"]
    spec = cascadelab.load_spec(scenario)
    with_bound = cascadelab.run(spec, overrides=overrides)
    monkeypatch.setattr(model_module.CascadeModel, "_nobody_takes", lambda self, p, mech: False)
    without = cascadelab.run(spec, overrides=overrides)
    assert with_bound.metrics == without.metrics
    assert with_bound.fills.equals(without.fills)


UNDERWATER = {"protocols.lender.mechanism.bonus": 0.15, "protocols.lender.mechanism.close_factor": 1.0,
              "liquidators.min_profit_usd": 1500.0, "populations.borrowers.health.low": 1.01}
"""Positions liquidated whole at a high bonus: the best offers take all the collateral, so what may be paid
moves with prices (the re-check's mu)."""


CAPPED = {"protocols.lender.mechanism.close_factor": 0.3, "liquidators.min_profit_usd": 400.0,
          "populations.borrowers.health.low": 1.01}
"""Most offers capped by a small close factor, the one nearest the threshold among them, and some paying all
the collateral: the scalar re-check charges the pay growth to the second group only."""


@pytest.mark.parametrize(("extra", "groups"), [({}, 1), (UNDERWATER, 1), (CAPPED, 2)],
                         ids=["borderline", "underwater", "capped"])
def test_the_recheck_never_vouches_for_a_threshold_some_clip_reaches(extra: dict, groups: int) -> None:
    """From a proof, move the venue (deeper or shallower), the fundamental and the oracle, rebuild the offers
    and let a keeper evaluate every clip exactly: the re-check (by scalars, then row by row) must refuse the threshold the best
    clip reaches, and vouch for a threshold enough above it (else it would never save anything)."""
    import copy

    from cascadelab.model import CascadeModel
    from cascadelab.rng import run_seed

    scenario, overrides = SCENARIOS["reference_min_profit"]
    spec = cascadelab.load_spec(cascadelab.load_spec(scenario), overrides={**overrides, **extra})
    model = CascadeModel(spec, run_seed(spec.run.seed))
    bound = model._take_bounds[0]
    while (bound._last is None or len(bound._last.groups) < groups
           or model.mechanisms[0].offer_ceiling(model.book, model.oracle_px[0]) is None):
        model.step()
    last, mech, venue, keeper, t = bound._last, model.mechanisms[0], model.venues[0], model.keepers[0], model.t
    z0, f0, px0 = venue.z, model.fundamental[t].copy(), model.oracle_px[0].copy()
    gas = model.gas.cost_usd(keeper.config.gas_units)
    rng = np.random.default_rng(5)
    refused = vouched = 0
    for _ in range(300):
        venue.z = z0 + rng.uniform(-0.05, 0.05)
        model.fundamental[t] = f0 * rng.uniform(0.97, 1.03)
        px = px0 * np.append(rng.uniform(0.97, 1.03, model.n_assets), 1.0)
        ceiling = mech.offer_ceiling(model.book, px)
        if ceiling is None:
            continue
        offers = copy.deepcopy(mech).offers(model.book, px, t)
        _, _, _, profit = keeper.evaluate(0, offers, np.arange(offers.size), offers.max_pay.copy())
        best = float(profit.max()) + gas  # before gas, as the threshold is
        assert not bound._still_holds(last, ceiling, best)
        refused += 1
        vouched += bound._still_holds(last, ceiling, best + 0.05 * max(best, 100.0))
    venue.z, model.fundamental[t] = z0, f0
    assert refused >= 100 and vouched >= 20


def test_failed_tries_back_off_and_a_holding_one_clears_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tries that fail wait 1, 2, 4, ... steps; one that holds clears the wait; rounds with no ceiling to try
    (the model asks only when there is one) do not count."""
    from types import SimpleNamespace

    from cascadelab.take_bound import TakeBound

    model = SimpleNamespace(t=0)
    bound = TakeBound(model, 0)  # type: ignore[arg-type]
    outcome = {"holds": False}
    monkeypatch.setattr(TakeBound, "_prove", lambda self, ceiling, threshold: (outcome["holds"], None))
    ceiling = SimpleNamespace(basis=None)
    tried = []
    for t in range(1, 40):
        model.t = t
        if bound.due(t, 5):
            tried.append(t)
            outcome["holds"] = t >= 20
            bound.nobody_takes(ceiling, 1.0)  # type: ignore[arg-type]
    assert tried[:5] == [1, 2, 4, 8, 16] and tried[5] == 32 and tried[6:] == list(range(33, 40))
    assert not bound.due(39, 0)  # nothing liquidatable: nothing to try
    # a failed try at 40 sets the wait; a round at 41 whose mechanism has no ceiling leaves it as it was
    model.t = 40
    outcome["holds"] = False
    bound.nobody_takes(ceiling, 1.0)  # type: ignore[arg-type]
    waiting = (bound._retry, bound._wait)
    model.t = 41
    stub = SimpleNamespace(book=None, oracle_px=[None], _take_bounds=[bound], _least_take_profit=lambda: 1.0)
    no_ceiling = SimpleNamespace(offer_ceiling=lambda book, px: None)
    assert not model_module.CascadeModel._nobody_takes(stub, 0, no_ceiling)  # type: ignore[arg-type]
    assert (bound._retry, bound._wait) == waiting
