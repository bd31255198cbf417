"""What a run leaves behind: per-step aggregates, the fill and sale logs, and the run metrics.

Per-step aggregates go into arrays preallocated for the whole horizon; fills and sales
are appended as array chunks (never one Python object per fill) and become DataFrames at
the end.  Metric definitions (DESIGN.md section 8; USD unless a fraction):

- ``bad_debt_usd``: debt written off (valued at the debt asset's market price when written
  off) + sum over open positions of max(0, debt - collateral value) at the horizon's
  market prices.  ``bad_debt_frac``: bad_debt_usd / initial debt value.
- ``liquidated_usd``: collateral seized by liquidations, valued at the market price at fill time.
- ``liquidated_debt_usd``: debt repaid by liquidations (at the debt asset's market price).
- ``liquidation_count``: number of liquidation fills.
- ``max_price_impact``: max over steps and assets of 1 - P_t / F_t (end-of-step market vs fundamental).
- ``borrower_loss_usd``: liquidated_usd - liquidated_debt_usd (what borrowers lost beyond their debt),
  less what a protocol credits back to the borrower when it takes the collateral itself (Comet's absorb
  credits V * liquidationFactor - debt: ``paid - repaid`` on liquidation fills whose taker is PROTOCOL).
- ``liquidator_pnl_usd``: keepers' sale proceeds - cost of the debt they repaid - gas
  + incentives protocols paid them (Maker tip/chip), plus unsold inventory at the horizon's
  market price.
- ``induced_liquidated_usd`` / ``induced_share``: liquidations of positions that would still
  have been healthy at the fundamental price (the cascade's own part), and their share of
  liquidated_usd.  "At the fundamental price" means as the protocol's own oracle would report
  it if it were fed F_t instead of the market price (same lag, threshold, heartbeat), so that
  oracle staleness alone is never counted as cascade: with venues that never move, nothing is
  induced.  This is a timing notion: an induced position may still have become liquidatable
  later at the fundamental.
- ``cascade_depth``: the longest chain in the cascade graph = the largest ``generation`` of a
  liquidation fill (0: every liquidation was liquidatable at the fundamental).  Generations,
  causes and the contagion matrix are defined in :mod:`cascadelab.cascade`.
- ``cascade_only_liquidated_usd`` / ``cascade_only_share``: liquidations of positions that,
  as they stood before their first liquidation, would *never* have been liquidatable at the
  fundamental (shadow-oracle health >= 1 at every step of the horizon): the liquidations the
  cascade alone is responsible for.  A property of the position, counted for all its
  liquidations; its first one is always induced, later ones need not be (a liquidation at a
  depressed price can leave it unhealthy even at the fundamental).
- with ``cascadelab.run(..., counterfactual=True)``: ``liquidated_usd_without_feedback``,
  ``bad_debt_usd_without_feedback`` (same spec and seed, every venue of kind ``none``) and
  ``cascade_multiplier`` = liquidated_usd / liquidated_usd_without_feedback (1.0 when both
  are 0; absent when only the counterfactual liquidated nothing).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from cascadelab.book import rows_health
from mechanisms.base import BORROWER, PROTOCOL, Fills

if TYPE_CHECKING:
    from cascadelab.model import CascadeModel
    from cascadelab.spec import Spec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

METRICS = (
    "bad_debt_usd", "bad_debt_frac", "liquidated_usd", "liquidated_debt_usd", "liquidation_count",
    "max_price_impact", "borrower_loss_usd", "liquidator_pnl_usd", "induced_liquidated_usd", "induced_share",
    "cascade_depth", "cascade_only_liquidated_usd", "cascade_only_share",
)
"""Run metric names (the contract of DESIGN.md section 8; extended, never renamed)."""

KINDS = ("liquidation", "write_off", "borrower", "redistribution", "sale", "incentive")
"""Fill kinds in the fill log ("sale": a keeper buys collateral the protocol holds, e.g. Comet's storefront;
"incentive": a protocol paid a keeper for an upkeep call, nothing moved)."""


FILL_TOTALS = ("liquidated_usd", "repaid_usd", "written_off_usd", "fills")
"""Per-step, per-protocol totals of the fill log in the timeseries (``<total>_<protocol>``): USD seized and
repaid by liquidations, USD written off, number of liquidation fills."""


def fill_totals(fills: Mapping[str, np.ndarray], chunks: list[tuple[int, int, int]], protocols: list[str],
                steps: int) -> dict[str, np.ndarray]:
    """The ``FILL_TOTALS`` columns from the fill log's columns (``Recorder.fill_columns``) and its chunks
    ((step, protocol, rows) per ``log_fills`` call, in log order): per chunk the sums that call used to add
    to its step's row, over the same rows in the same order, added in log order (the same bits)."""
    shape = (steps + 1, len(protocols))
    liquidated, repaid, written_off = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    count = np.zeros(shape, dtype=np.int64)
    kind, seized_usd, repaid_usd, written_off_usd = (fills[c] for c in ("kind", "seized_usd", "repaid_usd",
                                                                         "written_off_usd"))
    start = 0
    for t, p, n in chunks:
        rows = slice(start, start + n)
        start += n
        liq = kind[rows] == 0
        liquidated[t, p] += seized_usd[rows][liq].sum()
        repaid[t, p] += repaid_usd[rows][liq].sum()
        count[t, p] += int(liq.sum())
        written_off[t, p] += written_off_usd[rows].sum()
    cols = {}
    for p, proto in enumerate(protocols):
        for name, total in zip(FILL_TOTALS, (liquidated, repaid, written_off, count), strict=True):
            cols[f"{name}_{proto}"] = total[:, p]
    return cols


def fill_kind(fills: Fills) -> IntArray:
    """Index into KINDS for every fill row."""
    kind = np.zeros(fills.size, dtype=np.int64)
    moved = (np.abs(fills.seized).sum(axis=1) > 0) | (fills.repaid != 0)
    kind[~moved & (fills.written_off > 0)] = 1
    kind[~moved & (fills.written_off <= 0) & (fills.incentive > 0)] = 5
    kind[(fills.repaid < 0) | (fills.seized < 0).any(axis=1)] = 3
    kind[fills.taker == BORROWER] = 2  # after redistribution: top-ups add collateral but are borrower actions
    kind[(fills.to_protocol < 0).any(axis=1)] = 4  # custody sale: collateral from the protocol, not a position
    return kind


class _BuiltOnRead:
    """A dataclass field that may hold a builder (anything with ``frame()``): built and kept on first read.

    ``RunResult``'s frames are such fields: the metrics are computed from arrays, so a run (or a
    sweep of thousands) does not pay for DataFrames and the cascade graph unless someone reads them.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            raise AttributeError(self.name)  # no default value for the dataclass field
        value = obj.__dict__[self.name]
        if not isinstance(value, pd.DataFrame) and hasattr(value, "frame"):
            value = obj.__dict__[self.name] = value.frame()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


@dataclass(frozen=True)
class Table:
    """A frame's columns, made into a DataFrame when first read (``frame``); integer codes in
    ``categories`` columns become Categoricals."""

    columns: dict[str, Any]
    categories: dict[str, list[str]] = field(default_factory=dict)
    deferred: Callable[[], dict[str, Any]] | None = None
    """Columns made only when the frame is built (``columns`` holds their places); a run that is read
    only for its metrics, as in a sweep, never pays for them."""

    def frame(self) -> pd.DataFrame:
        cols = dict(self.columns)
        if self.deferred is not None:
            cols.update(self.deferred())
        for name, cats in self.categories.items():
            cols[name] = pd.Categorical.from_codes(cols[name], categories=cats)
        return pd.DataFrame(cols)


@dataclass
class RunResult:
    """Everything one run produced (DESIGN.md section 8)."""

    metrics: dict[str, float]
    timeseries: pd.DataFrame = _BuiltOnRead()  # type: ignore[assignment]  # frames are built when first read
    fills: pd.DataFrame = _BuiltOnRead()  # type: ignore[assignment]
    sales: pd.DataFrame = _BuiltOnRead()  # type: ignore[assignment]
    cascade: pd.DataFrame = _BuiltOnRead()  # type: ignore[assignment]  # the cascade graph
    per_protocol: dict[str, dict[str, float]]
    per_asset: dict[str, dict[str, float]]
    spec: Spec
    seed: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)
    contagion: dict[str, dict[str, float]] = field(default_factory=dict)
    """contagion[A][B]: USD liquidated in protocol B attributed to liquidation sales of protocol A."""
    causes: dict[str, dict[str, float]] = field(default_factory=dict)
    """causes[source][B]: the same for every impact source and ``fundamental``; columns sum to B's liquidated_usd."""
    counterfactual: dict[str, float] = field(default_factory=dict)
    """Metrics of the same run without feedback (filled by ``cascadelab.run(..., counterfactual=True)``)."""

    def to_json_dict(self) -> dict[str, Any]:
        """The summary printed by ``cascadelab run --json``."""
        out = {
            "metrics": self.metrics,
            "per_protocol": self.per_protocol,
            "per_asset": self.per_asset,
            "contagion": self.contagion,
            "causes": self.causes,
            "seed": self.seed,
            "checks": self.checks,
        }
        if self.counterfactual:
            out["counterfactual"] = self.counterfactual
        return out

    def add_counterfactual(self, without: RunResult) -> None:
        """Record the metrics of the same run without feedback and the cascade multiplier."""
        self.counterfactual = dict(without.metrics)
        base, liq = without.metrics["liquidated_usd"], self.metrics["liquidated_usd"]
        self.metrics["liquidated_usd_without_feedback"] = base
        self.metrics["bad_debt_usd_without_feedback"] = without.metrics["bad_debt_usd"]
        if base > 0 or liq == 0:
            self.metrics["cascade_multiplier"] = liq / base if base > 0 else 1.0

    def save(self, out_dir: str | Path) -> Path:
        """Write timeseries, fills, sales and cascade (Parquet), metrics and the resolved spec (JSON)."""
        from cascadelab.spec import spec_to_dict

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.timeseries.to_parquet(out / "timeseries.parquet", index=False)
        self.fills.to_parquet(out / "fills.parquet", index=False)
        self.sales.to_parquet(out / "sales.parquet", index=False)
        self.cascade.to_parquet(out / "cascade.parquet", index=False)
        (out / "metrics.json").write_text(json.dumps(self.to_json_dict(), indent=2, default=_json_default))
        (out / "spec.json").write_text(json.dumps(spec_to_dict(self.spec), indent=2, default=_json_default))
        return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@dataclass(frozen=True, slots=True)
class _FillChunk:
    """One ``log_fills`` call: the fills and what they cannot be told from after they are applied."""

    t: int
    p: int
    fills: Fills
    seized_usd: FloatArray
    collateral: FloatArray  # the positions' rows before the fills
    debt: FloatArray
    collateral_usd: FloatArray  # collateral value before, at the market (a matrix product: kept as computed)
    market: FloatArray  # market prices with USD, (A + 1,)


class Recorder:
    """Preallocated per-step arrays plus chunked fill and sale logs for one model."""

    def __init__(self, model: CascadeModel) -> None:
        self.model = model
        T, A, P, S = model.n_steps, model.n_assets, model.n_protocols, len(model.sources)
        self.oracle = np.zeros((T + 1, P, A))
        self.gas = np.zeros(T + 1)
        self.oracle_step = np.zeros((T + 1, P, A), dtype=np.int64)
        self.shadow = np.zeros((T + 1, P, A))
        self.decay = np.ones((T + 1, A))
        self.z = np.zeros((T + 1, A))
        self.parts = np.zeros((T + 1, A, S))
        self.unhealthy = np.zeros((T + 1, P), dtype=np.int64)
        self.pool_balance_usd = np.zeros((T + 1, P))  # backstops: deposits (Liquity) or reserves (Comet)
        self.pool_collateral_usd = np.zeros((T + 1, P))  # backstops: collateral held, at market
        self._fills: list[_FillChunk] = []
        # the book's debt and collateral totals per protocol, one entry per book version seen at a step end
        # (positions change only through book.apply), and which entry each step ended with
        self._totals_version = -1
        self._debt_totals: list[list[np.float64]] = []
        self._collateral_totals: list[list[FloatArray]] = []
        self._totals_at = np.zeros(T + 1, dtype=np.int64)
        self._collected = -1  # the last step collected
        self._sales: list[dict[str, np.ndarray]] = []
        self.n_fills = 0

    # ---------------------------------------------------------------- during the run

    def unhealthy_step(self, t: int, counts: list[int]) -> None:
        """Number of liquidatable positions per protocol at step t (0 unless recorded)."""
        self.unhealthy[t] = counts

    def log_fills(self, p: int, fills: Fills) -> IntArray:
        """Log fills before they are applied (so health is as they were taken); returns their ids.

        Only what cannot be recovered later is kept now: the fills, the positions' rows before
        them and the market prices (oracle prices are fixed within a step and recorded anyway).
        The other columns (kind, health at three price sets, USD values, per-asset columns) are
        made once for the whole log at run end (``fill_columns``), and the per-step totals when
        the timeseries is read (``fill_totals``), with the same operations.
        """
        m = self.model
        book = m.book
        pos = fills.position
        mkt = m.market_px_ext()
        ids = np.arange(self.n_fills, self.n_fills + fills.size, dtype=np.int64)
        self.n_fills += fills.size
        coll = book.collateral[pos]  # before the fills
        self._fills.append(_FillChunk(m.t, p, fills, fills.seized @ mkt[: m.n_assets], coll, book.debt[pos].copy(),
                                      coll @ mkt[: m.n_assets], mkt))
        return ids

    def log_sale(self, asset: int, fill_ids: IntArray, shares: FloatArray, dz: float,
                 proceeds: FloatArray) -> None:
        """A keeper's sale of seized collateral: each fill's share of the price move (z units) and proceeds."""
        self._sales.append({
            "fill_id": fill_ids,
            "step": np.full(fill_ids.size, self.model.t, dtype=np.int64),
            "asset": np.full(fill_ids.size, asset, dtype=np.int64),
            "dz": dz * shares,
            "proceeds_usd": proceeds,
        })

    def collect(self, t: int) -> None:
        """Step 9: record this step's state.  Only what cannot be told later is written each step; the
        market prices and the USD values of the books are made from it for all steps at once
        (:attr:`market`, :meth:`book_values`), with the same operations."""
        m = self.model
        book = m.book
        self.oracle[t] = m.oracle_px[:, :-1]
        for p, (o, shadow) in enumerate(zip(m.oracles, m.shadow_oracles, strict=True)):
            self.oracle_step[t, p] = o.obs_step
            self.shadow[t, p] = shadow.price
        self.gas[t] = m.gas.gwei
        for a, v in enumerate(m.venues):
            self.z[t, a] = v.z
            self.parts[t, a] = v.parts
        if self._totals_version != book.version:
            self._debt_totals.append([book.debt[s].sum() for s in book.slices])
            self._collateral_totals.append([book.collateral[s].sum(axis=0) for s in book.slices])
            self._totals_version = book.version
        self._totals_at[t] = len(self._debt_totals) - 1
        self._collected = t
        if m.backstops:
            mkt = m.market_px_ext()
            for b in m.backstops:
                pool, p = b.pool, b.protocol
                to_usd = 1.0 if b.config.variant == "comet" else mkt[book.debt_asset[p]]
                self.pool_balance_usd[t, p] = pool.balance * to_usd
                self.pool_collateral_usd[t, p] = pool.held @ mkt[:-1]

    @property
    def market(self) -> FloatArray:
        """(T+1, A) market price of each asset at the end of each step: the fundamental times the venue's
        multiplier of the displacement recorded then (``Venue.price``, elementwise); 0 for steps not yet run."""
        m = self.model
        n = self._collected + 1
        market = np.zeros_like(self.z)
        for a, v in enumerate(m.venues):
            market[:n, a] = m.fundamental[:n, a] * v.multiplier(self.z[:n, a])
        return market

    def book_values(self, market: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(T+1, P) each protocol's total debt and total collateral at the end of each step, in USD at the
        step-end prices ``market`` (:attr:`market`, made once by the caller)."""
        m = self.model
        n = self._collected + 1
        mkt = np.concatenate([market[:n], np.ones((n, 1))], axis=1)
        debt = np.array(self._debt_totals, dtype=np.float64).reshape(-1, m.n_protocols)[self._totals_at[:n]]
        debt_usd = np.zeros((self.z.shape[0], m.n_protocols))
        debt_usd[:n] = debt * mkt[:, m.book.debt_asset]
        collateral_usd = np.zeros((self.z.shape[0], m.n_protocols))
        for p in range(m.n_protocols):
            totals = np.array([c[p] for c in self._collateral_totals]).reshape(-1, m.n_assets)[self._totals_at[:n]]
            if m.n_assets == 1:  # the product the one-element matrix product makes
                collateral_usd[:n, p] = totals[:, 0] * market[:n, 0]
            else:  # the same matrix product, row by row
                collateral_usd[:n, p] = [c @ px for c, px in zip(totals, market[:n], strict=True)]
        return debt_usd, collateral_usd

    # ---------------------------------------------------------------- after the run

    def fill_columns(self) -> dict[str, np.ndarray]:
        """The fill log as one array per column (``kind``, ``protocol``, ``asset`` as integer codes)."""
        if self._fills:
            return self._logged_columns()
        m = self.model
        cols: dict[str, np.ndarray] = {c: np.zeros(0, dtype=np.int64) for c in (
            "fill_id", "step", "protocol", "position", "cohort", "taker", "kind", "asset")}
        for c in ("repaid", "paid", "written_off", "seized_usd", "repaid_usd", "paid_usd", "written_off_usd",
                  "incentive", "incentive_usd", "debt_before", "collateral_usd_before", "hf_oracle", "hf_fundamental",
                  "hf_market"):
            cols[c] = np.zeros(0)
        for name in m.asset_names:
            for c in (f"seized_{name}", f"seized_usd_{name}", f"to_protocol_{name}", f"collateral_{name}_before"):
                cols[c] = np.zeros(0)
        return cols

    def _logged_columns(self) -> dict[str, np.ndarray]:
        """The columns of the logged chunks: each value as ``log_fills`` used to compute it chunk by chunk
        (elementwise, with each row's own prices), so the bits are the same."""
        m = self.model
        book = m.book
        A = m.n_assets
        chunks = self._fills
        sizes = [c.fills.size for c in chunks]
        n = sum(sizes)

        def cat(get: Any) -> np.ndarray:
            return np.concatenate([get(c) for c in chunks])

        step = np.repeat(np.array([c.t for c in chunks], dtype=np.int64), sizes)
        protocol = np.repeat(np.array([c.p for c in chunks], dtype=np.int64), sizes)
        pos = cat(lambda c: c.fills.position)
        coll = cat(lambda c: c.collateral)
        debt = cat(lambda c: c.debt)
        seized = cat(lambda c: c.fills.seized)
        to_protocol = cat(lambda c: c.fills.to_protocol)
        repaid, paid, written_off, incentive = (cat(lambda c, f=f: getattr(c.fills, f))
                                                for f in ("repaid", "paid", "written_off", "incentive"))
        taker = cat(lambda c: c.fills.taker)
        mkt = np.repeat(np.stack([c.market for c in chunks]), sizes, axis=0)  # (n, A + 1) at each fill
        debt_col = book.debt_asset[protocol]
        rows = np.arange(n)
        debt_px = mkt[rows, debt_col]

        def with_usd(px: FloatArray) -> FloatArray:  # (T + 1, P, A) recorded oracle rows -> each fill's (n, A + 1)
            out = np.ones((n, A + 1))
            out[:, :A] = px[step, protocol]
            return out

        def health(px: FloatArray) -> FloatArray:  # PositionBook.health_of of the rows as they were logged
            return rows_health(coll, debt, book.lt[protocol], px, debt_col)

        cols: dict[str, np.ndarray] = {
            "fill_id": np.arange(n, dtype=np.int64),
            "step": step,
            "protocol": protocol,
            "position": pos,
            "cohort": book.cohort[pos],
            "taker": taker,
            "kind": fill_kind(Fills(pos, taker, repaid, paid, seized, to_protocol, written_off, incentive)),
            "repaid": repaid,
            "paid": paid,
            "written_off": written_off,
            "seized_usd": cat(lambda c: c.seized_usd),
            "repaid_usd": repaid * debt_px,
            "paid_usd": paid * debt_px,
            "written_off_usd": written_off * debt_px,
            "incentive": incentive,
            "incentive_usd": incentive * debt_px,
            "debt_before": debt,
            "collateral_usd_before": cat(lambda c: c.collateral_usd),
            "hf_oracle": health(with_usd(self.oracle)),
            "hf_fundamental": health(with_usd(self.shadow)),
            "hf_market": health(mkt),
            "asset": np.argmax(coll * mkt[:, :A], axis=1),
        }
        for a, name in enumerate(m.asset_names):
            cols[f"seized_{name}"] = seized[:, a]
            cols[f"seized_usd_{name}"] = seized[:, a] * mkt[:, a]
            cols[f"to_protocol_{name}"] = to_protocol[:, a]
            cols[f"collateral_{name}_before"] = coll[:, a].copy()
        return cols

    def sale_columns(self) -> dict[str, np.ndarray]:
        """The sale log as one array per column."""
        if not self._sales:
            return {"fill_id": np.zeros(0, dtype=np.int64), "step": np.zeros(0, dtype=np.int64),
                    "asset": np.zeros(0, dtype=np.int64), "dz": np.zeros(0), "proceeds_usd": np.zeros(0)}
        return {k: np.concatenate([c[k] for c in self._sales]) for k in self._sales[0]}

    def timeseries_table(self, fills: Mapping[str, np.ndarray]) -> Table:
        """The per-step aggregates, one array per column (views of a snapshot: later steps do not show); the
        per-step fill totals are made from the fill log's columns ``fills`` (:meth:`fill_columns`, kept by
        reference) when the frame is first read."""
        m = self.model
        T = m.n_steps
        snap = {name: getattr(self, name).copy() for name in (
            "gas", "z", "decay", "parts", "oracle", "oracle_step", "shadow", "unhealthy", "pool_balance_usd",
            "pool_collateral_usd")}
        snap["market"] = self.market  # made fresh from the recorded state, as are the book values
        snap["debt_usd"], snap["collateral_usd"] = self.book_values(snap["market"])
        rec = SimpleNamespace(**snap)
        cols: dict[str, np.ndarray] = {
            "step": np.arange(T + 1),
            "time_s": np.arange(T + 1) * m.spec.run.dt_seconds,
            "gas_gwei": rec.gas,
        }
        for a, name in enumerate(m.asset_names):
            cols[f"fundamental_{name}"] = m.fundamental[:, a]
            cols[f"market_{name}"] = rec.market[:, a]
            cols[f"impact_{name}"] = 1.0 - rec.market[:, a] / m.fundamental[:, a]
            cols[f"z_{name}"] = rec.z[:, a]
            cols[f"decay_{name}"] = rec.decay[:, a]
            for s, src in enumerate(m.sources.names):
                cols[f"z_{name}_{src}"] = rec.parts[:, a, s]
        for p, proto in enumerate(m.protocol_names):
            for a, name in enumerate(m.asset_names):
                cols[f"oracle_{proto}_{name}"] = rec.oracle[:, p, a]
                cols[f"oracle_step_{proto}_{name}"] = rec.oracle_step[:, p, a]
                cols[f"oracle_fundamental_{proto}_{name}"] = rec.shadow[:, p, a]
            cols[f"unhealthy_{proto}"] = rec.unhealthy[:, p]
            cols[f"debt_usd_{proto}"] = rec.debt_usd[:, p]
            cols[f"collateral_usd_{proto}"] = rec.collateral_usd[:, p]
            for total in FILL_TOTALS:
                cols[f"{total}_{proto}"] = None  # deferred: fill_totals
        for b in m.backstops:
            proto = m.protocol_names[b.protocol]
            cols[f"pool_balance_usd_{proto}"] = rec.pool_balance_usd[:, b.protocol]
            cols[f"pool_collateral_usd_{proto}"] = rec.pool_collateral_usd[:, b.protocol]
        chunks = [(c.t, c.p, c.fills.size) for c in self._fills]
        return Table(cols, deferred=functools.partial(fill_totals, fills, chunks, list(m.protocol_names), T))

    def result(self) -> RunResult:
        """Metrics and checks now (from arrays); the frames and the cascade graph are built when first read."""
        from cascadelab.cascade import analyse

        m = self.model
        fills = self.fill_columns()
        sales = self.sale_columns()
        cascade = analyse(self.cascade_inputs(), fills, sales)  # keeps a copy of decay for the graph
        fills["induced"] = (fills["kind"] == 0) & (fills["hf_fundamental"] >= 1.0)
        fills.update(cascade.columns)
        metrics, per_protocol, per_asset = compute_metrics(m, fills, self.market)
        d_err, c_err = m.book.ledger_error()
        checks = {
            "debt_ledger_error": d_err,
            "collateral_ledger_error": c_err,
            "collateral_conservation_error": m.collateral_conservation_error(),
        }
        bad = {k: v for k, v in checks.items() if not v <= 1e-6}
        if bad:
            raise AssertionError(f"conservation violated at run end: {bad}")
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise AssertionError(f"metric {k} is not finite: {v}")
        categories = {"kind": list(KINDS), "protocol": list(m.protocol_names), "asset": list(m.asset_names),
                      **cascade.categories}
        return RunResult(
            metrics=metrics,
            timeseries=self.timeseries_table(fills),
            fills=Table(fills, categories),
            sales=Table(sales),
            cascade=cascade.graph,
            per_protocol=per_protocol,
            per_asset=per_asset,
            spec=m.spec,
            seed={"entropy": int(m.seed_sequence.entropy), "spawn_key": list(m.seed_sequence.spawn_key)},
            checks=checks,
            contagion=cascade.contagion,
            causes=cascade.causes,
        )

    def cascade_inputs(self):
        """The arrays :func:`cascadelab.cascade.analyse` reads."""
        from cascadelab.cascade import CascadeInputs

        m = self.model
        return CascadeInputs(protocols=m.protocol_names, assets=m.asset_names,
                             multipliers=[v.multiplier for v in m.venues], parts=self.parts, decay=self.decay,
                             oracle_step=self.oracle_step, oracle_px=self.oracle, shadow_px=self.shadow,
                             lt=m.book.lt, debt_asset=m.book.debt_asset)


def _group_metrics(fills: Mapping[str, np.ndarray], rows: npt.NDArray[np.bool_] | None, open_shortfall: float,
                   initial_debt: float) -> dict[str, float]:
    """The fill-based metrics over one group of fills (``rows``: a protocol's, or None for the whole run)."""
    every = np.ones(fills["kind"].size, dtype=bool) if rows is None else rows
    liq = every & (fills["kind"] == 0)
    seized = fills["seized_usd"]
    liquidated = float(seized[liq].sum())
    repaid = float(fills["repaid_usd"][liq].sum())
    induced = float(seized[liq & fills["induced"]].sum())
    only = float(seized[liq & fills["cascade_only"]].sum())
    bad = float(fills["written_off_usd"][every].sum()) + open_shortfall
    absorbed = liq & (fills["taker"] == PROTOCOL)
    credited = float((fills["paid_usd"][absorbed] - fills["repaid_usd"][absorbed]).sum())
    generation = fills["generation"][liq]
    return {
        "bad_debt_usd": bad,
        "bad_debt_frac": bad / initial_debt if initial_debt > 0 else 0.0,
        "liquidated_usd": liquidated,
        "liquidated_debt_usd": repaid,
        "liquidation_count": float(np.count_nonzero(liq)),
        "borrower_loss_usd": liquidated - repaid - credited,
        "induced_liquidated_usd": induced,
        "induced_share": induced / liquidated if liquidated > 0 else 0.0,
        "cascade_depth": float(generation.max()) if generation.size else 0.0,
        "cascade_only_liquidated_usd": only,
        "cascade_only_share": only / liquidated if liquidated > 0 else 0.0,
    }


def compute_metrics(m: CascadeModel, fills: Mapping[str, np.ndarray], market: FloatArray
                    ) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Run metrics, per-protocol metrics and per-asset metrics (definitions in the module docstring).

    ``fills`` holds the fill log's columns (``Recorder.fill_columns``) plus ``induced``,
    ``generation`` and ``cascade_only``.
    """
    book = m.book
    px_end = np.append(market[-1], 1.0)
    px_0 = np.append(m.fundamental[0], 1.0)
    shortfall = np.maximum(book.debt_value(px_end) - book.collateral_value(px_end), 0.0)
    debt0_usd = book.debt0 * px_0[book.debt_asset[book.protocol]]
    per_protocol = {}
    for p, name in enumerate(m.protocol_names):
        s = book.slices[p]
        per_protocol[name] = _group_metrics(fills, fills["protocol"] == p, float(shortfall[s].sum()),
                                            float(debt0_usd[s].sum()))
    metrics = _group_metrics(fills, None, float(shortfall.sum()), float(debt0_usd.sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        impact = 1.0 - market / m.fundamental
    metrics["max_price_impact"] = float(np.max(impact, initial=0.0))
    pnl = 0.0
    for k in m.keepers:
        pnl += (k.books.proceeds - k.books.spent - k.books.gas + k.books.incentives
                + float(k.inventory @ market[-1]))
    metrics["liquidator_pnl_usd"] = pnl
    liq = fills["kind"] == 0
    per_asset = {}
    for a, name in enumerate(m.asset_names):
        usd = fills[f"seized_usd_{name}"][liq]
        took = usd > 0
        total = float(usd.sum())
        induced = float(usd[fills["induced"][liq]].sum())
        only = float(usd[fills["cascade_only"][liq]].sum())
        generation = fills["generation"][liq][took]
        per_asset[name] = {  # fills that seized this asset, valued by what they seized of it
            "liquidated_usd": total,
            "max_price_impact": float(np.max(impact[:, a], initial=0.0)),
            "liquidation_count": float(np.count_nonzero(took)),
            "induced_liquidated_usd": induced,
            "induced_share": induced / total if total > 0 else 0.0,
            "cascade_depth": float(generation.max()) if generation.size else 0.0,
            "cascade_only_liquidated_usd": only,
            "cascade_only_share": only / total if total > 0 else 0.0,
        }
    return {k: metrics[k] for k in METRICS}, per_protocol, per_asset
