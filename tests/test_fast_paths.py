"""The engine's shortcuts give exactly what the long way gives (issue 8: no optimisation changes results).

Each shortcut is checked against the computation it replaces: the health band against a
fresh health pass, the O(changed) ``start`` against the old whole-array version, the keepers'
offer filter against the keepers' own evaluation, idle mechanisms against their offers and
settle, the lazily built frames against themselves after pickling, the fill columns and the
step-end prices made at run end against those made during the run, and the cascade analysis's
one-pass attribution and first-fill scatter against step-by-step attribution and sorting.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cascadelab
from agents.liquidators import STRATEGIES, Liquidator
from cascadelab.book import PositionBook
from cascadelab.health_band import HealthBand
from cascadelab.record import Table
from cascadelab.spec import KeeperConfig
from mechanisms.base import Bids, Fills, MechanismBase
from mechanisms.registry import REGISTRY, make, parse_config


@st.composite
def books_and_prices(draw: st.DrawFn) -> tuple[PositionBook, np.ndarray, np.ndarray]:
    """A book of 1-2 protocols (one may owe a priced asset), 1-2 assets, and two (P, A+1) oracle matrices."""
    n_assets = draw(st.integers(1, 2))
    n_protocols = draw(st.integers(1, 2))
    n = draw(st.integers(1, 30))
    coll = np.array(draw(st.lists(st.lists(st.floats(0.0, 100.0), min_size=n_assets, max_size=n_assets),
                                  min_size=n, max_size=n)))
    debt = np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(1.0, 5e4)), min_size=n, max_size=n)))
    lt = np.array(draw(st.lists(st.lists(st.sampled_from([0.0, 0.5, 0.8]), min_size=n_assets, max_size=n_assets),
                                min_size=n_protocols, max_size=n_protocols)))
    protocol = np.sort(np.array(draw(st.lists(st.integers(0, n_protocols - 1), min_size=n, max_size=n))))
    debt_asset = np.array([n_assets] + [draw(st.sampled_from([0, n_assets]))] * (n_protocols - 1))
    book = PositionBook.of(coll, debt, lt, protocol=protocol, debt_asset=debt_asset)
    px0 = np.array(draw(st.lists(st.floats(100.0, 3000.0), min_size=n_assets, max_size=n_assets)) + [1.0])
    moves = np.array(draw(st.lists(st.floats(0.9, 1.1), min_size=n_assets, max_size=n_assets)) + [1.0])
    return book, np.tile(px0, (n_protocols, 1)), np.tile(px0 * moves, (n_protocols, 1))


@settings(max_examples=300, deadline=None)
@given(case=books_and_prices(), level=st.sampled_from([1.0, 1.08]))
def test_health_band_only_vouches_for_an_unchanged_set(case: tuple[PositionBook, np.ndarray, np.ndarray],
                                                        level: float) -> None:
    """Whenever the band says 'unchanged', a fresh health pass at the new prices finds the same positions below."""
    book, px0, px1 = case
    band = HealthBand(book, range(book.lt.shape[0]), level)
    hf0 = book.health(px0)
    below = band.reset(hf0, px0)
    assert np.array_equal(below, np.flatnonzero(hf0 < level)) and np.array_equal(band.below, hf0 < level)
    assert np.array_equal(hf0, book.health(px0))  # restored after reset
    if band.unchanged(px1):
        assert np.array_equal(np.flatnonzero(book.health(px1) < level), below)


def test_health_band_proves_small_moves_and_forgets_after_a_fill() -> None:
    """Healths 0.5 and 2.0 (10 ETH, LT 0.8, prices 1,000 -> 1,010): the set below 1 is provably {0}; after a
    fill the book version changes and nothing is proved until the next evaluation."""
    book = PositionBook.of(np.array([[10.0], [10.0]]), np.array([16_000.0, 4_000.0]), np.array([0.8]))
    px0, px1 = np.array([[1000.0, 1.0]]), np.array([[1010.0, 1.0]])
    band = HealthBand(book, [0], 1.0)
    assert band.reset(book.health(px0), px0).tolist() == [0]
    assert band.unchanged(px1) and band.anyone_below
    assert not band.unchanged(np.array([[2100.0, 1.0]]))  # position 0 reaches health 1.05
    book.apply(Fills.make(np.array([1]), 0, 1, repaid=1.0))
    assert not band.unchanged(px1)


@settings(max_examples=300, deadline=None)
@given(case=books_and_prices(), emptied=st.sets(st.integers(0, 29), max_size=6), level=st.sampled_from([1.0, 1.08]))
def test_a_protocols_band_holds_only_while_its_own_rows_are_unchanged(
        case: tuple[PositionBook, np.ndarray, np.ndarray], emptied: set[int], level: float) -> None:
    """One band per protocol (as the model keeps them): after a fill that empties some positions' collateral,
    in any protocols, a band that still says 'unchanged' must be right, so the fill must have moved the
    version of every protocol whose rows it touched; each protocol's health evaluated alone has the bits of
    the whole book's evaluation."""
    book, px0, _ = case
    protocols = range(book.lt.shape[0])
    bands = [HealthBand(book, [q], level) for q in protocols]
    whole = book.health(px0)
    for q, band in enumerate(bands):
        s = book.slices[q]
        alone = book.health(px0, [q])[s]
        assert alone.tobytes() == whole[s].tobytes()
        band.reset(alone, px0)
    pos = np.array(sorted(i for i in emptied if i < book.n), dtype=np.int64)
    if pos.size:
        book.apply(Fills.make(pos, 0, book.n_assets, seized=book.collateral[pos].copy()))
    now = book.health(px0)
    for q, band in enumerate(bands):
        s = book.slices[q]
        if band.unchanged(px0):
            assert np.array_equal(np.flatnonzero(now[s] < level), band.below_idx)
            assert not np.isin(pos, np.arange(s.start, s.stop)).any()  # no row of q was touched


def test_a_fill_in_one_protocol_leaves_the_others_band_proving() -> None:
    """Two protocols, one position each (health 0.5 and 2.0): repaying in protocol 1 moves only its version,
    so protocol 0's band still proves its set at new prices while protocol 1's must be evaluated again."""
    book = PositionBook.of(np.array([[10.0], [10.0]]), np.array([16_000.0, 4_000.0]), np.array([[0.8], [0.8]]),
                           protocol=np.array([0, 1]))
    px0, px1 = np.array([[1000.0, 1.0]] * 2), np.array([[1010.0, 1.0]] * 2)
    bands = [HealthBand(book, [q], 1.0) for q in (0, 1)]
    for q, band in enumerate(bands):
        band.reset(book.health(px0, [q])[book.slices[q]], px0)
    book.apply(Fills.make(np.array([1]), 0, 1, repaid=1.0))
    assert book.protocol_version == [0, 1]
    assert bands[0].unchanged(px1) and not bands[1].unchanged(px1)


def _old_start(first: np.ndarray, unhealthy: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """MechanismBase.start before issue 8 phase 2 (a mask over the whole array every step)."""
    need = int(unhealthy.max()) + 1 if unhealthy.size else 0
    if need > first.size:
        first = np.concatenate([first, np.full(need - first.size, -1, dtype=np.int64)])
    now = np.zeros(first.size, dtype=bool)
    now[unhealthy] = True
    first[~now] = -1
    first[unhealthy[first[unhealthy] < 0]] = t
    return first, first[unhealthy]


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.sets(st.integers(0, 40), max_size=12), st.booleans()), min_size=1, max_size=25))
def test_start_in_o_changed_matches_the_whole_array_version(steps: list[tuple[set[int], bool]]) -> None:
    """Also when the model hands back its read-only array of the last step (its health band held)."""
    mech = MechanismBase(None, 0, 1)
    first = np.zeros(0, dtype=np.int64)
    idx = None
    for t, (unhealthy, same_as_last) in enumerate(steps, start=1):
        if not (same_as_last and idx is not None):  # else: the last step's set, in the same array object
            idx = np.array(sorted(unhealthy), dtype=np.int64)
            idx.flags.writeable = False
        mech.start(idx, t)
        first, since = _old_start(first, idx, t)
        assert np.array_equal(mech.liquidatable, idx) and np.array_equal(mech.since, since)


@settings(max_examples=200, deadline=None)
@given(min_profit=st.floats(-100.0, 1e4), margin=st.floats(0.0, 1.0), cost=st.lists(st.floats(0.0, 1e7), max_size=5))
def test_every_strategy_asks_at_least_min_profit(min_profit: float, margin: float, cost: list[float]) -> None:
    """Liquidator.may_pay_off drops offers whose best profit stays below min_profit_usd: valid for every strategy."""
    cfg = KeeperConfig(min_profit_usd=min_profit, margin=margin)
    for name, rule in STRATEGIES.items():
        assert (rule(cfg, np.array(cost)) >= min_profit).all(), name


@pytest.mark.parametrize("overrides", [
    {},
    {"venues.ETH.depth_usd": 4e6},
    {"venues.ETH.kind": "transient_impact", "venues.ETH.depth_usd": 3e7, "noise.ETH.volume_usd": 2e5,
     "liquidators.strategy": "margin", "liquidators.margin": 0.01, "liquidators.min_profit_usd": 5.0},
], ids=["constant_product", "thin_pool", "transient_margin"])
def test_offers_the_keepers_skip_are_never_profitable(monkeypatch: pytest.MonkeyPatch, overrides: dict) -> None:
    """Every offer may_pay_off drops fails the keeper's own profit rule at every clip size (evaluated anyway)."""
    real = Liquidator.may_pay_off
    dropped = []

    def checked(self: Liquidator, protocol: int, offers, idx: np.ndarray, remaining: np.ndarray) -> np.ndarray:
        keep = real(self, protocol, offers, idx, remaining)
        if (~keep).any():
            pay, _, cost, profit = self.evaluate(protocol, offers, idx[~keep], remaining)
            assert (profit < self.rule(self.config, cost)).all()
            dropped.append(int((~keep).sum()))
        return keep

    monkeypatch.setattr(Liquidator, "may_pay_off", checked)
    cascadelab.run(None, overrides={"run.steps": 600, "populations.a_passive.count": 800,
                                    "populations.a_active.count": 400, "populations.b_passive.count": 800,
                                    **overrides})
    assert sum(dropped) > 0  # the filter did drop offers, so the check above ran


@pytest.mark.parametrize("table", [{"kind": "fixed_bonus"}, {"kind": "partial"}, {"kind": "dutch_auction"},
                                   {"kind": "backstop_pool", "sell": "twap"}], ids=lambda t: t["kind"])
def test_idle_mechanisms_have_nothing_to_offer_or_settle(table: dict) -> None:
    """With nobody liquidatable an idle mechanism offers nothing and settles nothing (so skipping them is exact)."""
    assert table["kind"] in REGISTRY
    book = PositionBook.of(np.array([[10.0], [5.0]]), np.array([1_000.0, 2_000.0]), np.array([0.8]))
    mech = make(parse_config(table, "m"), 0, 1)
    if hasattr(mech, "pool_for"):
        mech.pool_for(book)
    px = np.array([2000.0, 1.0])
    for t in (1, 2):
        mech.start(np.zeros(0, dtype=np.int64), t)
        assert mech.idle()
        assert mech.offers(book, px, t).size == 0
        assert mech.settle(book, Bids.empty(), t).size == 0


def test_offers_are_rebuilt_when_an_input_changes() -> None:
    """same_offer_inputs: True only for the same liquidatable set, start steps, book version and prices."""
    book = PositionBook.of(np.array([[10.0], [5.0]]), np.array([9_000.0, 4_000.0]), np.array([0.8]))
    mech = make(parse_config({"kind": "fixed_bonus"}, "m"), 0, 1)
    px = np.array([1000.0, 1.0])
    mech.start(np.array([0, 1]), 1)
    first = mech.offers(book, px, 1)
    assert mech.offers(book, px, 1) is first
    assert mech.offers(book, px * 0.99, 1) is not first
    second = mech.offers(book, px, 1)
    book.apply(Fills.make(np.array([0]), 0, 1, repaid=100.0))
    third = mech.offers(book, px, 1)
    assert third is not second and third.max_pay[0] < second.max_pay[0]


def test_frames_are_built_on_first_read_and_survive_pickling() -> None:
    r = cascadelab.run(None, overrides={"run.steps": 200})
    assert isinstance(r.__dict__["fills"], Table)  # not built yet
    back = pickle.loads(pickle.dumps(r))
    for name in ("fills", "sales", "timeseries", "cascade"):
        assert getattr(back, name).equals(getattr(r, name)), name
    again = cascadelab.RunResult(**back.__dict__)
    assert again.fills.equals(r.fills) and len(r.fills) > 0


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 6), st.one_of(st.floats(0.5, 1.5), st.sampled_from([1.0, math.nan])),
                               st.booleans()), max_size=40))
def test_anchors_match_a_grouped_forward_fill(rows: list[tuple[int, float, bool]]) -> None:
    """cascade._anchors (numpy) equals pandas' groupby-ffill of 'latest fill below 1' per position (health
    exactly 1 or NaN counts as not below)."""
    import pandas as pd

    from cascadelab.cascade import _anchors

    pos = np.array([r[0] for r in rows], dtype=np.int64)
    hf = np.array([r[1] for r in rows])
    idx = np.flatnonzero(np.array([r[2] for r in rows], dtype=bool))
    got = _anchors({"fill_id": np.arange(len(rows)), "position": pos, "hf_oracle": hf}, idx)
    want = np.full(len(rows), -1, dtype=np.int64)
    if idx.size:
        sub = pd.DataFrame({"pos": pos[idx], "a": np.where(hf[idx] < 1.0, idx, np.nan)})
        want[idx] = sub.groupby("pos")["a"].ffill().fillna(-1).to_numpy().astype(np.int64)
    assert np.array_equal(got, want)



@settings(max_examples=200, deadline=None)
@given(start=st.lists(st.sampled_from([0.0, -0.0, 1e-300, -1e-300, -3.5, 2.0, 5e-324, -5e-324]), min_size=6, max_size=6),
       decay=st.lists(st.sampled_from([0.0, 1e-200, 0.5, 0.9, 1.0]), min_size=1, max_size=12),
       first=st.integers(1, 9), ring=st.integers(1, 5))
def test_a_quiet_stretch_decays_bit_for_bit_as_step_by_step(start: list[float], decay: list[float], first: int,
                                                            ring: int) -> None:
    """cascade._decay_stretch equals the step loop's C[s] = (C[s-1] + 0) * decay[s] in every bit, signed
    zeros and underflow included (values are compared as raw bytes)."""
    from cascadelab.cascade import _decay_stretch

    A, P, G = 2, 1, 3
    last = first + len(decay) - 1
    d = np.full((last + 1, A), 0.7)
    d[first:] = np.array(decay)[:, None] * np.array([1.0, 0.25])[None, :]
    C0 = np.zeros((ring, A, P, G))
    C0[(first - 1) % ring] = np.array(start).reshape(A, P, G)
    want = C0.copy()
    for s in range(first, last + 1):
        want[s % ring] = (want[(s - 1) % ring] + np.zeros((A, P, G))) * d[s][:, None, None]
    got = C0.copy()
    _decay_stretch(got, ring, d, first, last)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("capital", [2e6, 4e4], ids=["rich", "capital_bound"])
def test_an_empty_window_is_empty_for_every_identical_keeper(monkeypatch: pytest.MonkeyPatch, capital: float) -> None:
    """The model skips keepers of the same configuration and free slots once one found nothing profitable in its
    window (until someone bids): each of them, asked anyway at that moment, bids nothing either."""
    real = Liquidator.bid
    checked = []

    def asking_the_others(self: Liquidator, protocol: int, offers, remaining: np.ndarray, t: int,
                          ranked: np.ndarray | None = None) -> tuple:
        out = real(self, protocol, offers, remaining, t, ranked)
        if self.window_was_empty:
            for other in self.model.keepers:
                if other is not self and other.config is self.config and other.slots() == self.slots():
                    bids, _ = real(other, protocol, offers, remaining.copy(), t, ranked)
                    assert bids.size == 0
                    checked.append(1)
            self.window_was_empty = True  # what the model reads next
        return out

    monkeypatch.setattr(Liquidator, "bid", asking_the_others)
    cascadelab.run(None, overrides={"run.steps": 400, "populations.a_passive.count": 400,
                                    "populations.a_active.count": 200, "populations.b_passive.count": 400,
                                    "venues.ETH.depth_usd": 4e6, "liquidators.capital_usd": capital})
    assert len(checked) > 100


@pytest.mark.parametrize(("capital", "broke"), [(2e6, False), (4e4, False), (2e6, True)],
                         ids=["rich", "capital_bound", "one_keeper_broke"])
def test_an_empty_ranking_is_empty_for_every_identical_keeper(monkeypatch: pytest.MonkeyPatch, capital: float,
                                                              broke: bool) -> None:
    """The model skips keepers of a configuration once a bid hands back an empty ranking (the first found nothing
    profitable, or a later one found nothing left in the ranking): each of them, asked anyway at that moment,
    bids nothing either.  A keeper without free capital (``broke``: keeper 0's is 0) looks at nothing, so it
    must not hand back an empty ranking for the others."""
    real = Liquidator.bid
    checked = {"first": 0, "later": 0}
    if broke:
        free_capital = Liquidator.free_capital
        monkeypatch.setattr(Liquidator, "free_capital", lambda self: 0.0 if self.index == 0 else free_capital(self))

    def asking_the_others(self: Liquidator, protocol: int, offers, remaining: np.ndarray, t: int,
                          ranked: np.ndarray | None = None) -> tuple:
        before = remaining.copy()
        out = real(self, protocol, offers, remaining, t, ranked)
        if out[1] is not None and out[1].size == 0 and out[0].size == 0:
            for other in self.model.keepers:
                if other is not self and other.config is self.config:
                    bids, _ = real(other, protocol, offers, before.copy(), t, ranked)
                    assert bids.size == 0
                    checked["first" if ranked is None else "later"] += 1
        return out

    monkeypatch.setattr(Liquidator, "bid", asking_the_others)
    cascadelab.run(None, overrides={"run.steps": 400, "populations.a_passive.count": 400,
                                    "populations.a_active.count": 200, "populations.b_passive.count": 400,
                                    "venues.ETH.depth_usd": 4e6, "liquidators.capital_usd": capital})
    assert checked["first"] > 100 and checked["later"] > 40


def test_a_keeper_poorer_than_the_blocking_clip_takes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model skips a keeper whose free capital is below what stopped an identical keeper (the cost of the
    best-ranked clip, until someone bids): each such keeper, asked anyway at that moment, bids nothing, and
    one with at least that much does bid (so the check can tell the two apart)."""
    real = Liquidator.bid
    poorer, richer = [], []

    def asking_the_others(self: Liquidator, protocol: int, offers, remaining: np.ndarray, t: int,
                          ranked: np.ndarray | None = None) -> tuple:
        out = real(self, protocol, offers, remaining, t, ranked)
        needs = self.needs_capital
        if needs is not None:
            for other in self.model.keepers:
                if other is self or other.config is not self.config:
                    continue
                saved = other.capital
                for capital, seen in ((needs * 0.999, poorer), (needs * 1.001, richer)):
                    other.capital = capital
                    planned = self.model.planned.copy()
                    bids, _ = real(other, protocol, offers, remaining.copy(), t, out[1])
                    self.model.planned[:] = planned  # only asked: its planned sales must not count
                    other.fills_this_step -= bids.size
                    seen.append(bids.size)
                other.capital = saved
            self.needs_capital = needs  # what the model reads next
        return out

    monkeypatch.setattr(Liquidator, "bid", asking_the_others)
    cascadelab.run(None, overrides={"run.steps": 500, "populations.a_passive.count": 400,
                                    "populations.a_active.count": 200, "populations.b_passive.count": 400,
                                    "venues.ETH.depth_usd": 1.6e8, "liquidators.capital_usd": 6e4,
                                    "protocols.lender_a.mechanism.close_factor": 1.0})
    assert len(poorer) > 100 and not any(poorer)
    assert sum(n > 0 for n in richer) > 0.5 * len(richer)


@pytest.mark.parametrize("scenario", ["eth_steth_depeg", "contagion", "debt_market_inelastic"])
def test_fill_columns_made_at_run_end_equal_those_made_at_each_fill(monkeypatch: pytest.MonkeyPatch,
                                                                    scenario: str) -> None:
    """Recorder.log_fills keeps the raw fills; the columns it no longer computes at each fill (kind, health
    at the oracle, fundamental and market prices, USD values, dominant asset) and the timeseries' per-step
    fill totals come out bit for bit as computing them then, from the book and prices of that moment,
    gave (several assets and protocols, a priced debt asset)."""
    from pathlib import Path

    import cascadelab.record as record

    at_fill: list[dict[str, np.ndarray]] = []
    totals: dict[str, np.ndarray] = {}
    log_fills = record.Recorder.log_fills

    def logged_then(self: record.Recorder, p: int, fills: Fills) -> np.ndarray:
        m, pos = self.model, fills.position
        mkt = m.market_px_ext()
        debt_px = mkt[m.book.debt_asset[p]]
        kind = record.fill_kind(fills)
        if not totals:
            totals.update({name: np.zeros((m.n_steps + 1, m.n_protocols), dtype=np.int64 if name == "fills"
                                          else np.float64) for name in record.FILL_TOTALS})
        liq = kind == 0  # the totals as log_fills used to add them up, fill by fill
        totals["liquidated_usd"][m.t, p] += (fills.seized @ mkt[: m.n_assets])[liq].sum()
        totals["repaid_usd"][m.t, p] += (fills.repaid[liq] * debt_px).sum()
        totals["fills"][m.t, p] += int(liq.sum())
        totals["written_off_usd"][m.t, p] += (fills.written_off * debt_px).sum()
        at_fill.append({
            "kind": kind,
            "hf_oracle": m.book.health_of(pos, m.oracle_px),
            "hf_fundamental": m.book.health_of(pos, m.shadow_oracle_px()),
            "hf_market": m.book.health_of(pos, np.tile(mkt, (m.n_protocols, 1))),
            "asset": np.argmax(m.book.collateral[pos] * mkt[: m.n_assets], axis=1),
            "repaid_usd": fills.repaid * debt_px, "paid_usd": fills.paid * debt_px,
            "step": np.full(fills.size, m.t, dtype=np.int64), "protocol": np.full(fills.size, p, dtype=np.int64),
            **{f"seized_usd_{a}": fills.seized[:, i] * mkt[i] for i, a in enumerate(m.asset_names)},
        })
        return log_fills(self, p, fills)

    monkeypatch.setattr(record.Recorder, "log_fills", logged_then)
    path = Path(__file__).resolve().parents[1] / "experiments" / "scenarios" / f"{scenario}.toml"
    result = cascadelab.run(path)
    fills = result.fills
    assert len(fills) > 100
    for column in at_fill[0]:
        want = np.concatenate([chunk[column] for chunk in at_fill])
        series = fills[column]
        got = series.cat.codes.to_numpy().astype(np.int64) if series.dtype == "category" else series.to_numpy()
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), column
    assert totals["fills"].sum() > 100
    for p, proto in enumerate(result.spec.protocols):
        for name, want in totals.items():
            got = result.timeseries[f"{name}_{proto}"].to_numpy()
            assert got.dtype == want.dtype and got.tobytes() == want[:, p].tobytes(), (name, proto)


@pytest.mark.parametrize(("scenario", "overrides"), [
    ("eth_steth_depeg", {}), ("contagion", {}), ("contagion", {"venues.ALT.kind": "none"}),
    ("debt_market_inelastic", {})])
def test_step_end_prices_and_book_values_made_at_run_end_equal_those_made_each_step(
        monkeypatch: pytest.MonkeyPatch, scenario: str, overrides: dict) -> None:
    """Recorder.collect no longer prices anything; the market prices and each protocol's debt and
    collateral in USD, made for all steps at run end from the recorded venue states and book totals,
    come out bit for bit as computing them at each step end gave (constant-product, transient-impact
    and no-impact venues, two assets, two protocols, a priced debt asset)."""
    from pathlib import Path

    import cascadelab.record as record

    at_end: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    collect = record.Recorder.collect

    def collected_then(self: record.Recorder, t: int) -> None:
        m, book = self.model, self.model.book
        mkt = m.market_px_ext()
        at_end.append((mkt[:-1].copy(),
                       np.array([book.debt[s].sum() * mkt[book.debt_asset[p]] for p, s in enumerate(book.slices)]),
                       np.array([book.collateral[s].sum(axis=0) @ mkt[:-1] for s in book.slices])))
        collect(self, t)

    monkeypatch.setattr(record.Recorder, "collect", collected_then)
    path = Path(__file__).resolve().parents[1] / "experiments" / "scenarios" / f"{scenario}.toml"
    result = cascadelab.run(path, overrides=overrides)
    m = result.spec
    assert len(at_end) == m.run.steps + 1 and len(result.fills) > 100
    ts = result.timeseries
    for k, columns in enumerate((list(m.assets), [f"debt_usd_{p}" for p in m.protocols],
                                 [f"collateral_usd_{p}" for p in m.protocols])):
        want = np.stack([row[k] for row in at_end])
        if k == 0:
            columns = [f"market_{a}" for a in columns]
        got = ts[columns].to_numpy()
        assert got.tobytes() == want.tobytes(), columns
    assert np.ptp(ts[[f"market_{a}" for a in m.assets]].to_numpy(), axis=0).min() > 0  # prices moved


@pytest.mark.parametrize(("scenario", "overrides"), [
    ("contagion", {}), ("eth_steth_depeg", {}), ("debt_market_inelastic", {}),
    ("reference_crash", {"liquidators.min_profit_usd": 50.0, "run.steps": 900})])
def test_induced_fills_attributed_together_equal_step_by_step(monkeypatch: pytest.MonkeyPatch, scenario: str,
                                                               overrides: dict) -> None:
    """The cascade analysis attributes every induced fill of a run in one pass; the shares and the graph's
    inputs come out byte for byte as attributing each step's fills on their own (several protocols and
    assets, a priced debt asset, steps of one fill and of hundreds)."""
    from pathlib import Path

    import cascadelab.cascade as cascade

    calls: list[tuple] = []
    real = cascade._attribute

    def kept(inp, state, steps, obs_noise, pending, shares, req_obs, req_scale, req_long) -> None:
        calls.append((inp, state, steps, obs_noise, list(pending), shares.shape, req_obs.shape))
        real(inp, state, steps, obs_noise, pending, shares, req_obs, req_scale, req_long)

    monkeypatch.setattr(cascade, "_attribute", kept)
    path = Path(__file__).resolve().parents[1] / "experiments" / "scenarios" / f"{scenario}.toml"
    cascadelab.run(path, overrides=overrides)
    inp, state, steps, obs_noise, pending, shape, obs_shape = calls[0]
    sizes = [step.rows.size for step in pending]
    assert len(pending) > 20 and max(sizes) > 1

    def attributed(groups: list[list]) -> list[np.ndarray]:
        out = [np.zeros(shape), np.zeros(obs_shape, dtype=np.int64), np.zeros(obs_shape), np.ones(obs_shape, bool)]
        for group in groups:
            real(inp, state, steps, obs_noise, group, *out)
        return out

    together, alone = attributed([pending]), attributed([[step] for step in pending])
    assert together[0].any()
    for a, b in zip(together, alone, strict=True):
        assert a.tobytes() == b.tobytes()


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=80))
def test_first_fills_match_the_sorting_version(rows: list[tuple[int, bool]]) -> None:
    """cascade._first_fills (a scatter of the minimum) gives what np.unique and searchsorted gave: the first
    liquidation fill on each fill's position, and the distinct first fills ascending."""
    from hypothesis import assume

    from cascadelab.cascade import _first_fills

    position = np.array([r[0] for r in rows], dtype=np.int64)
    idx = np.flatnonzero([r[1] for r in rows])
    assume(idx.size > 0)
    pos = position[idx]
    positions, first_at = np.unique(pos, return_index=True)
    want_first = idx[first_at][np.searchsorted(positions, pos)]
    first, uniq = _first_fills(pos, idx, len(rows))
    assert np.array_equal(first, want_first) and np.array_equal(uniq, np.unique(want_first))


@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, 6), value=st.one_of(st.floats(allow_nan=True), st.integers(-5, 5)),
       as_array=st.booleans())
def test_fill_columns_are_fresh_and_equal_broadcast_copies(k: int, value: float, as_array: bool) -> None:
    """``Fills.make``'s column helper: the same bytes as broadcasting and copying, never an alias."""
    from mechanisms.base import _column

    src = np.full(k, value, dtype=np.float64) if as_array else value
    expected = np.broadcast_to(np.asarray(src, dtype=np.float64), (k,)).copy()
    got = _column(src, k, np.float64)
    assert got.dtype == expected.dtype and got.shape == (k,)
    assert got.tobytes() == expected.tobytes()
    if as_array and k:
        got[0] = 123.0
        assert src[0] != 123.0 or value == 123.0  # a copy, not the caller's array
    with pytest.raises(ValueError):
        _column(np.zeros(k + 2), k, np.float64)  # a wrong length is an error, as before


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_a_shuffle_of_k_slots_makes_mesas_shuffle_do_draws(k: int) -> None:
    """The model's step 4 with passive cohorts only shuffles k placeholder slots: the draws Mesa's
    ``AgentSet.shuffle_do`` makes for k agents (so the keepers' order that follows is unchanged)."""
    import random

    import mesa
    from mesa.agent import AgentSet

    model = mesa.Model(rng=1)
    agents = [mesa.Agent(model) for _ in range(k)]
    with_mesa, with_slots = random.Random(7), random.Random(7)
    AgentSet(agents, random=with_mesa).shuffle_do(lambda agent: None)
    with_slots.shuffle([None] * k)
    assert with_mesa.getstate() == with_slots.getstate()


@pytest.mark.parametrize("reactive", [0, 1, 3])
def test_passive_cohorts_skip_react_with_the_same_results(reactive: int) -> None:
    """The default scenario's three cohorts with none, one (as shipped) or all three reactive: the run is
    the same whether step 4 shuffles slots and calls only the reacting cohorts or calls every cohort's
    react through Mesa (with three, the order of the calls decides which cohort gets which draws)."""
    from cascadelab.model import CascadeModel
    from cascadelab.rng import run_seed

    overrides: dict = {"run.steps": 400}
    if reactive == 0:
        overrides["populations.a_active.behaviour.kind"] = "passive"
    if reactive == 3:
        for pop, action in (("a_passive", "top_up"), ("b_passive", "repay")):
            overrides[f"populations.{pop}.behaviour"] = {
                "kind": "reactive", "action": action, "trigger_health": 1.1, "target_health": 1.3,
                "probability": 0.3, "latency_steps": 2}
    spec = cascadelab.load_spec(None, overrides=overrides)

    def run(slots: bool) -> cascadelab.RunResult:
        model = CascadeModel(spec, run_seed(spec.run.seed))
        assert (model._cohort_slots is not None) and len(model._cohort_slots) >= 3
        assert sum(c is not None for c in model._cohort_slots) == reactive
        if not slots:
            model._cohort_slots = None  # Mesa's shuffle_do, every cohort's react
        return model.run().result()

    fast, mesa_path = run(True), run(False)
    assert fast.metrics == mesa_path.metrics and fast.metrics["liquidation_count"] > 0
    pd.testing.assert_frame_equal(fast.fills, mesa_path.fills)
    # the reactive cohort acted, so the calls' order and the draws they make were exercised
    assert ((fast.fills["kind"] == "borrower").sum() > 0) == (reactive > 0)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(-3, 3), min_size=1, max_size=12), same=st.booleans())
def test_unique_inverse_equals_np_unique(values: list[int], same: bool) -> None:
    """The shortcut for one repeated value gives np.unique's unique values and inverse."""
    from cascadelab.arrays import unique_inverse

    arr = np.array([values[0]] * len(values) if same else values, dtype=np.int64)
    got, want = unique_inverse(arr), np.unique(arr, return_inverse=True)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and np.array_equal(g, w)


def _snap_the_long_way(book: PositionBook, pos: np.ndarray) -> None:
    """PositionBook._snap before the skip of rows all clear of residue (every row written every time)."""
    from cascadelab.book import DUST

    for value, start, added, removed in ((book.collateral, book.collateral0, book.collateral_in, book.collateral_out),
                                         (book.debt, book.debt0, book.debt_in, book.written_off)):
        scale = np.maximum(start[pos] + added[pos], 1.0)
        v = value[pos]
        if (v < -DUST * scale * 1e3).any():
            raise ValueError("overdraft")
        value[pos] = np.where(np.abs(v) <= DUST * scale, 0.0, np.maximum(v, 0.0))
        removed[pos] += v - value[pos]


@settings(max_examples=300, deadline=None)
@given(n_assets=st.integers(1, 2), rows=st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 1.2), st.floats(0.0, 1.2),
                                                           st.sampled_from([0.0, 1e-12, -1e-12, 0.5])),
                                                 min_size=1, max_size=5))
def test_a_fill_clear_of_residue_snaps_as_the_long_way(n_assets: int, rows: list[tuple]) -> None:
    """Same bytes in every ledger (signed zeros included) and the same overdraft errors as writing every row."""
    coll = np.array([[10.0, 0.0], [5.0, 2.0], [1e-3, 3.0], [7.0, 7.0]])[:, :n_assets]
    debt = np.array([100.0, 50.0, 1e-4, 0.0])
    books = [PositionBook.of(coll.copy(), debt.copy(), np.full((1, n_assets), 0.8), protocol=np.zeros(4, dtype=np.int64),
                             debt_asset=np.array([n_assets])) for _ in range(2)]
    pos = np.array([r[0] for r in rows])
    # seize / repay a fraction of the row (above 1: an overdraft), plus a tiny residue or nothing
    seized = np.array([coll[p] * f + e for p, f, _, e in rows])
    repaid = np.array([debt[p] * g + e for p, _, g, e in rows])
    fills = Fills.make(pos, 0, n_assets, seized=seized, repaid=repaid)
    books[1]._snap = lambda p: _snap_the_long_way(books[1], p)
    outcomes = []
    for book in books:
        try:
            book.apply(fills)
            outcomes.append(None)
        except ValueError:
            outcomes.append("overdraft")
    assert outcomes[0] == outcomes[1]
    if outcomes[0] is None:
        for name in ("collateral", "debt", "collateral_out", "written_off", "repaid", "collateral_in"):
            assert getattr(books[0], name).tobytes() == getattr(books[1], name).tobytes(), name


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), levels=st.integers(3, 40),
       rows=st.integers(1, 3), no_debt=st.booleans())
def test_health_at_levels_one_asset_equals_the_einsum(seed: int, n: int, levels: int, rows: int,
                                                      no_debt: bool) -> None:
    """One asset, USD debt: the cascade analysis's health at each level without the einsum over assets
    and the per-fill gather has the bits of the general formula (some fills without debt: inf)."""
    from cascadelab.cascade import _health_at_levels

    rng = np.random.default_rng(seed)
    v = rng.lognormal(8.0, 2.0, (n, 1)) * (rng.random((n, 1)) > 0.05)  # some without collateral
    dv = rng.lognormal(8.0, 2.0, n) * (rng.random(n) > (0.1 if no_debt else 0.0))
    rel_u = rng.lognormal(0.0, 0.2, (rows, 1, levels))
    row = rng.integers(0, rows, n)
    d_idx, priced = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    got = _health_at_levels(v, dv, d_idx, priced, rel_u, row)
    rel = rel_u[row]
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.einsum("na,nal->nl", v, rel) / (dv[:, None] * np.ones((n, levels)))
    want = np.where(dv[:, None] > 0, want, np.inf)
    assert got.shape == want.shape and np.array_equal(got.view(np.int64), want.view(np.int64))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 400), assets=st.integers(1, 3),
       protocols=st.integers(1, 2), gens=st.sampled_from([8, 16, 32]))
def test_earlier_generations_once_per_triple_equals_per_fill(seed: int, m: int, assets: int, protocols: int,
                                                             gens: int) -> None:
    """The attribution's sum over earlier generations, made once per distinct (row, level, long
    pattern) and read back, has the bits of the einsum over every fill's own gathered row."""
    from cascadelab.cascade import _earlier_generations

    rng = np.random.default_rng(seed)
    u_rows = int(rng.integers(1, 6))
    cg = rng.normal(0.0, 1.0, (u_rows, assets, protocols, gens)) * (rng.random((u_rows, assets, protocols, gens)) > 0.3)
    u = rng.integers(0, u_rows, m)
    k = rng.integers(1, gens + 1, m)
    long = rng.random((m, assets)) > 0.2
    sign = np.where(long, -1.0, 1.0)
    gmask = np.arange(gens)[None, :] < k[:, None]
    want = np.einsum("maqg,mg->maq", np.maximum(sign[:, :, None, None] * cg[u], 0.0), gmask)
    got = _earlier_generations(cg, u, k, long)
    assert got.shape == want.shape and np.array_equal(got.view(np.int64), want.view(np.int64))

