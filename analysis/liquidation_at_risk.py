"""Liquidation-at-risk (LaR): how much collateral becomes liquidatable as prices fall.

For a book at a point in time and a price shock (one asset falling by ``d`` with the others
fixed, or every asset falling by ``d`` together):

- **static** curve (Perez et al. 2021, "Liquidations: DeFi on a Knife-edge", section 5):
  the collateral (USD at the shocked price) of positions whose health at the shocked price
  is below 1;
- **with cascades**: the same shock as a gap in the fundamental, after which the book's own
  liquidations feed back through the venues until nothing more fails (a fixed point).  One
  round is one step of the simulation, in its order: the venues recover by one step of
  their half-life; each protocol's oracle reports the market price of ``lag_steps`` rounds
  ago (the shocked fundamental before the gap's first round); every position with health < 1
  at its oracle is liquidated by one step of a fixed-bonus rule with its protocol's
  ``close_factor`` and ``bonus`` (repay min(close_factor * debt, collateral / (1 + bonus)),
  hand over collateral worth (1 + bonus) times the debt repaid at the oracle price, pro
  rata across assets); keepers take only what they can sell at a profit in the round (on
  each asset, the largest sale whose marginal execution price is at least the oracle price
  / (1 + bonus), volume-weighted over the round's liquidations; every liquidation on that
  asset is scaled down to fit), skip liquidations whose bonus does not pay the gas of one
  transaction (at the snapshot's gas price) and, together, repay at most the keepers' total
  capital per round (every liquidation scaled down alike); the seized collateral is sold on the asset's venue (the
  venue maths of the simulation).  Positions liquidatable in any round count, valued at the
  shocked *fundamental* price, so the two curves differ only in which positions fail.

Assumptions (also in ASSUMPTIONS.md): oracles are lagged but update every round (no
deviation threshold or heartbeat); keepers act every round without latency or transaction
limit and their capital is back in full each round (they sell within the round); gas stays
at the snapshot's price; arbitrage capital is unlimited; borrowers do not react; the
fundamental stays at the shocked price.  Mechanisms without ``bonus``/``close_factor``
parameters are approximated with ``DEFAULT_BONUS`` and a close factor of 1.  The curve is a
fast approximation of the simulation's loop, not a replay of it: the simulation (gas
spikes, keepers' clip sizes, oracle thresholds, deleveraging borrowers) usually liquidates
less, and later.

Ranking measure (``ranking``): the *mean liquidatable share* = the mean over drops ``d`` in
[0, ``horizon``] (default 30%) of LaR(d) / collateral of the group, by the trapezoid rule
on the grid.  For a protocol: every asset falls together, share of the protocol's
collateral.  For an asset: that asset alone falls, share of all collateral held in it
(LaR counts only that asset's part of each liquidatable position).  ``cascade_extra_share``
is the difference between the cascade and static measures (what the feedback adds).
``first_drop`` is the smallest drop on the grid at which the cascade LaR reaches
``threshold`` (default 10%) of the group's collateral (1.0 when it never does).
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from cascadelab.market.venues import Venue
from cascadelab.spec import VenueConfig

if TYPE_CHECKING:
    from cascadelab.book import PositionBook
    from cascadelab.model import CascadeModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_BONUS = 0.05
"""Bonus assumed for mechanisms that have no ``bonus`` parameter."""

DEFAULT_DROPS = np.round(np.linspace(0.0, 0.5, 26), 10)
"""Price drops the curves are computed on: 0%, 2%, ..., 50%."""


@dataclass(frozen=True)
class BookSnapshot:
    """What LaR needs: the positions, prices, venues and each protocol's oracle lag and liquidation terms."""

    book: PositionBook
    prices: FloatArray  # (A,) fundamental prices at the snapshot
    z: FloatArray  # (A,) venue displacement at the snapshot
    venues: tuple[VenueConfig, ...]
    initial_prices: FloatArray  # (A,) prices the venues' liquidity was set at
    bonus: FloatArray  # (P,)
    close_factor: FloatArray  # (P,)
    oracle_lag: IntArray  # (P,) rounds between the market price and what the oracle reports
    gas_usd: float = 0.0  # cost of one liquidation transaction
    keeper_capital_usd: float = np.inf  # debt the keepers can repay per round, together

    @property
    def assets(self) -> list[str]:
        return list(self.book.assets)

    @property
    def protocols(self) -> list[str]:
        return list(self.book.protocols)


def liquidation_terms(mechanism_config: Any) -> tuple[float, float]:
    """(bonus, close_factor) of a mechanism config; see DEFAULT_BONUS for the fallback."""
    bonus = float(getattr(mechanism_config, "bonus", DEFAULT_BONUS))
    close_factor = float(getattr(mechanism_config, "close_factor", 1.0))
    return bonus, close_factor


def snapshot(model: CascadeModel) -> BookSnapshot:
    """The model's book as it stands now (at t=0 right after construction)."""
    spec = model.spec
    terms = [liquidation_terms(spec.protocols[p].mechanism) for p in model.protocol_names]
    return BookSnapshot(
        book=deepcopy(model.book),
        prices=model.fundamental[model.t].copy(),
        z=np.array([v.z for v in model.venues]),
        venues=tuple(v.config for v in model.venues),
        initial_prices=np.array([spec.assets[a].initial_price for a in model.asset_names]),
        bonus=np.array([t[0] for t in terms]),
        close_factor=np.array([t[1] for t in terms]),
        oracle_lag=np.array([spec.protocols[p].oracle.lag_steps for p in model.protocol_names], dtype=np.int64),
        gas_usd=float(model.gas.cost_usd(spec.liquidators.gas_units)),
        keeper_capital_usd=float(sum(g.count * g.capital_usd for _, g in spec.liquidators.all_groups())),
    )


def initial_snapshot(spec: Any, seed: np.random.SeedSequence) -> BookSnapshot:
    """The book at t=0 of the run with this spec and seed (builds the model; simulates nothing)."""
    from cascadelab.model import CascadeModel

    return snapshot(CascadeModel(spec, seed))


# ---------------------------------------------------------------------------- curves


def shock_prices(snap: BookSnapshot, shock: str, drops: FloatArray) -> FloatArray:
    """(G, A) fundamental prices after each drop: ``shock`` is an asset name or ``"all"``."""
    drops = np.asarray(drops, dtype=np.float64)
    factor = np.ones((drops.size, len(snap.prices)))
    if shock == "all":
        factor[:] = (1.0 - drops)[:, None]
    else:
        factor[:, snap.assets.index(shock)] = 1.0 - drops
    return snap.prices[None, :] * factor


def health(book: PositionBook, coll: FloatArray, debt: FloatArray, oracle: FloatArray) -> FloatArray:
    """Health with a leading grid axis: coll (G, n, A), debt (G, n), oracle (G, P, A) -> (G, n).

    The formula of PositionBook.health, one protocol slice at a time; +inf where there is no debt.
    """
    A = book.n_assets
    out = np.full(debt.shape, np.inf)
    for p, s in enumerate(book.slices):
        if s.start == s.stop:
            continue
        px = oracle[:, p, :]  # (G, A)
        weighted = np.einsum("gna,a,ga->gn", coll[:, s], book.lt[p], px)
        d = book.debt_asset[p]
        owed = debt[:, s] * (px[:, d][:, None] if d < A else 1.0)
        with np.errstate(over="ignore"):
            np.divide(weighted, owed, out=out[:, s], where=owed > 0)
    return out


def static_curve(snap: BookSnapshot, shock: str, drops: FloatArray) -> pd.DataFrame:
    """Collateral (USD at the shocked price) of positions with health < 1, per drop, protocol and asset."""
    book = snap.book
    fund = shock_prices(snap, shock, drops)
    G = fund.shape[0]
    coll = np.broadcast_to(book.collateral, (G, *book.collateral.shape))
    debt = np.broadcast_to(book.debt, (G, book.n))
    oracle = np.repeat(fund[:, None, :], len(book.protocols), axis=1)
    under = health(book, coll, debt, oracle) < 1.0
    return _tabulate(snap, shock, drops, under, fund, "static_usd")


def cascade_curve(snap: BookSnapshot, shock: str, drops: FloatArray, max_rounds: int = 1000
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LaR with the book's own liquidations feeding back through the venues (module docstring).

    Returns the curve (like :func:`static_curve`, column ``cascade_usd``) and, per drop, the
    rounds to the fixed point, the collateral sold (USD) and the largest market impact per asset.
    """
    book = snap.book
    drops = np.asarray(drops, dtype=np.float64)
    G, A, P = drops.size, book.n_assets, len(book.protocols)
    fund = shock_prices(snap, shock, drops)
    coll = np.repeat(book.collateral[None], G, axis=0)
    debt = np.repeat(book.debt[None], G, axis=0)
    venues = [[Venue(snap.venues[a], float(snap.initial_prices[a]), 1) for a in range(A)] for _ in range(G)]
    for g in range(G):
        for a in range(A):
            venues[g][a].z = float(snap.z[a])
    bonus, cf = snap.bonus[book.protocol], snap.close_factor[book.protocol]
    ever = np.zeros((G, book.n), dtype=bool)
    sold_usd = np.zeros(G)
    rounds = np.zeros(G, dtype=np.int64)
    worst = np.zeros((G, A))
    observed = [fund.copy()]  # market price each round, before its sales; round 0 = the shocked fundamental
    quiet = np.zeros(G, dtype=np.int64)  # rounds since anything was worth liquidating
    horizon = int(snap.oracle_lag.max(initial=0)) + 1
    alive = coll.sum(axis=2) > 0
    for r in range(1, max_rounds + 1):
        act = np.flatnonzero(quiet < horizon)  # grid points not at their fixed point yet
        if act.size == 0:
            break  # nothing worth liquidating for longer than any oracle lag anywhere
        for g in act:
            for a, v in enumerate(venues[g]):
                v.recover(float(fund[g, a]))
        market = fund * np.array([[v.multiplier() for v in row] for row in venues])
        observed.append(market)
        oracle = np.stack([observed[max(r - int(snap.oracle_lag[p]), 0)] for p in range(P)], axis=1)  # (G, P, A)
        under = (health(book, coll[act], debt[act], oracle[act]) < 1.0) & alive[act]
        gi, ni = np.nonzero(under)
        gi = act[gi]
        ever[gi, ni] = True
        # one liquidation step of every liquidatable position (sparse over (grid point, position))
        p = book.protocol[ni]
        px = oracle[gi, p, :]  # (m, A) the position's oracle prices
        d = book.debt_asset[p]
        p_debt = np.where(d < A, px[np.arange(ni.size), np.minimum(d, A - 1)], 1.0)
        c = coll[gi, ni]
        value = (c * px).sum(axis=1)
        b = bonus[ni]
        repay = np.minimum(cf[ni] * debt[gi, ni], value / ((1.0 + b) * p_debt))
        repay = np.where(b * repay * p_debt > snap.gas_usd, repay, 0.0)  # the bonus must pay the gas
        busy = np.bincount(gi, weights=(repay > 0).astype(np.float64), minlength=G) > 0
        quiet[act] = np.where(busy[act], 0, quiet[act] + 1)
        rounds[busy] = r
        if not busy.any():
            continue
        spend = np.bincount(gi, weights=repay * p_debt, minlength=G)
        repay *= np.minimum(1.0, snap.keeper_capital_usd / np.maximum(spend, 1e-300))[gi]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where((repay > 0) & (value > 0), np.minimum(repay * (1.0 + b) * p_debt / value, 1.0), 0.0)
        wanted = c * frac[:, None]
        fit = _profitable_fraction(venues, gi, wanted, px / (1.0 + b)[:, None], fund)  # (G, A)
        scale = np.where(c > 0, fit[gi], 1.0).min(axis=1)
        seized = wanted * scale[:, None]
        coll[gi, ni] = c - seized
        debt[gi, ni] -= repay * scale
        alive[gi, ni] = coll[gi, ni].sum(axis=1) > 0
        for a in range(A):
            units = np.bincount(gi, weights=seized[:, a], minlength=G)
            for g in np.flatnonzero(units > 0):
                sold_usd[g] += venues[g][a].sell(float(units[g]), float(fund[g, a]), 0)
        worst = np.maximum(worst, 1.0 - np.array([[v.multiplier() for v in row] for row in venues]))
    curve = _tabulate(snap, shock, drops, ever, fund, "cascade_usd")
    info = pd.DataFrame({"shock": shock, "drop": drops, "rounds": rounds, "sold_usd": sold_usd})
    for a, name in enumerate(book.assets):
        info[f"max_impact_{name}"] = worst[:, a]
    return curve, info


def _profitable_fraction(venues: list[list[Venue]], gi: IntArray, wanted: FloatArray, floor_px: FloatArray,
                         fund: FloatArray, points: int = 64) -> FloatArray:
    """Per (grid point, asset): the share of the wanted sale keepers can sell at a profit this round.

    A keeper paid at oracle price O with bonus b breaks even on the last unit it sells when
    the marginal execution price is O / (1 + b) (``floor_px`` per liquidation; keepers take
    offers while the marginal one pays, as in agents/liquidators.py); the threshold is
    volume-weighted over the round's liquidations of the asset.
    """
    G, A = fund.shape
    fit = np.ones((G, A))
    for a in range(A):
        units = np.bincount(gi, weights=wanted[:, a], minlength=G)
        floor = np.bincount(gi, weights=wanted[:, a] * floor_px[:, a], minlength=G)
        for g in np.flatnonzero(units > 1e-12):  # below that, dust: sold whole
            q = units[g] * np.r_[0.0, np.geomspace(1e-6, 1.0, points)]
            step = np.diff(q)
            marginal = np.diff(venues[g][a].quote_sell(q, float(fund[g, a]))) / np.where(step > 0, step, 1.0)
            ok = np.flatnonzero(marginal >= floor[g] / units[g])
            fit[g, a] = q[ok[-1] + 1] / units[g] if ok.size else 0.0
    return fit


def _tabulate(snap: BookSnapshot, shock: str, drops: FloatArray, under: npt.NDArray[np.bool_], px: FloatArray,
              column: str) -> pd.DataFrame:
    """Long table: (shock, drop, protocol, asset) -> USD of that asset held by positions flagged ``under``."""
    book = snap.book
    rows = []
    for p, name in enumerate(book.protocols):
        s = book.slices[p]
        held = np.einsum("gn,na->ga", under[:, s].astype(np.float64), book.collateral[s]) * px  # (G, A)
        total = book.collateral[s].sum(axis=0)[None, :] * px
        for a, asset in enumerate(book.assets):
            rows.append(pd.DataFrame({"shock": shock, "drop": drops, "protocol": name, "asset": asset,
                                      column: held[:, a], "collateral_usd": total[:, a]}))
    return pd.concat(rows, ignore_index=True)


def lar_table(snap: BookSnapshot, drops: FloatArray | None = None, shocks: list[str] | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Static and cascade LaR for every shock (each asset alone, then ``all``); (curves, fixed-point info)."""
    drops = DEFAULT_DROPS if drops is None else np.asarray(drops, dtype=np.float64)
    if shocks is None:
        shocks = [*snap.assets, "all"] if len(snap.assets) > 1 else [*snap.assets]
    curves, infos = [], []
    for shock in shocks:
        static = static_curve(snap, shock, drops)
        cascade, info = cascade_curve(snap, shock, drops)
        curves.append(static.assign(cascade_usd=cascade["cascade_usd"].to_numpy()))
        infos.append(info)
    return pd.concat(curves, ignore_index=True), pd.concat(infos, ignore_index=True)


def ranking(curves: pd.DataFrame, horizon: float = 0.3, threshold: float = 0.1) -> pd.DataFrame:
    """Assets and protocols ranked by mean liquidatable share over drops 0..horizon (module docstring)."""
    cols = ["static_usd", "cascade_usd", "collateral_usd"]
    rows = []
    joint = "all" if (curves["shock"] == "all").any() else curves["shock"].iloc[0]  # one asset: its own shock
    proto = curves[curves["shock"] == joint].groupby(["protocol", "drop"], as_index=False, sort=False)[cols].sum()
    for name, g in proto.groupby("protocol", sort=False):
        rows.append(_measure("protocol", str(name), g, horizon, threshold))
    own = curves[curves["shock"] == curves["asset"]].groupby(["asset", "drop"], as_index=False, sort=False)[cols].sum()
    for name, g in own.groupby("asset", sort=False):
        rows.append(_measure("asset", str(name), g, horizon, threshold))
    out = pd.DataFrame(rows)
    out["rank"] = out.groupby("kind")["cascade_share"].rank(ascending=False, method="first").astype(int)
    return out.sort_values(["kind", "rank"]).reset_index(drop=True)


def _measure(kind: str, name: str, g: pd.DataFrame, horizon: float, threshold: float) -> dict[str, Any]:
    g = g.sort_values("drop")
    g = g[g["drop"] <= horizon + 1e-12]
    d = g["drop"].to_numpy()
    coll = g["collateral_usd"].to_numpy()
    span = d[-1] - d[0] if d.size > 1 else 1.0

    def mean_share(col: str) -> float:
        share = np.divide(g[col].to_numpy(), coll, out=np.zeros(d.size), where=coll > 0)
        return float(np.trapezoid(share, d) / span) if d.size > 1 else float(share[0])

    reach = np.flatnonzero((g["cascade_usd"].to_numpy() >= threshold * coll) & (coll > 0))
    static_mean, cascade_mean = mean_share("static_usd"), mean_share("cascade_usd")
    return {
        "kind": kind, "name": name,
        "static_share": static_mean, "cascade_share": cascade_mean,
        "cascade_extra_share": cascade_mean - static_mean,
        "first_drop": float(d[reach[0]]) if reach.size else 1.0,
        "collateral_usd": float(coll[0]),
    }
