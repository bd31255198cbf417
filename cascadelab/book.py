"""PositionBook: every position of every protocol as parallel numpy columns.

Positions are stored grouped by protocol (protocol ``p`` owns the contiguous rows
``book.slices[p]``), so health for all positions is one matrix-vector product per
protocol and never a Python loop over positions.  Collateral is a (positions x assets)
matrix, so multi-collateral positions need nothing special.  :meth:`PositionBook.apply`
is the only code that writes positions; it also keeps the per-position ledger that the
conservation invariants are checked against.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cascadelab.allocator import keep_freed_memory
from cascadelab.spec import USD, Spec
from mechanisms.base import Fills

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DUST = 1e-9
"""Relative size below which an amount counts as zero (floating-point residue)."""


def health_quotient(weighted: FloatArray, debt_value: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """weighted / debt_value where debt_value > 0, else +inf (health's quotient, vectorised)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.divide(weighted, debt_value, out=out)
    out[~(debt_value > 0)] = np.inf
    return out


def rows_health(collateral: FloatArray, debt: FloatArray, lt: FloatArray, px: FloatArray,
                debt_col: IntArray | int) -> FloatArray:
    """Health sum_a C_a LT_a P_a / (D P_debt) of positions given their rows (+inf without debt).

    ``collateral`` (k, A) and ``debt`` (k,) are the rows; ``lt`` (k, A), prices ``px`` (k, A + 1) and the
    debt asset's price column ``debt_col`` (k,) are per row, or with one asset may be one shared
    row (``lt`` (A,), ``px`` (A + 1,), an int).  One asset: the column product, without the matrix
    product's overhead.
    """
    A = collateral.shape[1]
    if A == 1:
        weighted = collateral[:, 0] * lt[..., 0] * px[..., 0]
    else:
        weighted = np.einsum("ij,ij->i", collateral * lt, px[:, :A])
    debt_px = px[debt_col] if px.ndim == 1 else px[np.arange(debt.size), debt_col]
    return health_quotient(weighted, debt * debt_px)


@dataclass
class PositionBook:
    """All positions as columns; a position's id is its row index.

    Attributes:
        assets: asset symbols; column ``a`` of ``collateral`` is ``assets[a]``.
        protocols: protocol names; ``protocol[i]`` indexes this list.
        protocol: protocol of each position.
        cohort: global cohort (borrower agent) index of each position, -1 if it belongs to none.
        collateral: units of each asset held by each position, shape (n, A).
        debt: debt of each position in units of its protocol's debt asset.
        lt: liquidation threshold of each (protocol, asset), shape (P, A).
        debt_asset: debt asset of each protocol as a price column: ``A`` means USD (price 1).
        slices: rows of each protocol.
        locked: positions an auction mechanism has claimed (Maker Dog.bark / Cat.bite); set by
            the mechanisms, read by borrower cohorts, which do not act on them.
    """

    assets: list[str]
    protocols: list[str]
    protocol: IntArray
    cohort: IntArray
    collateral: FloatArray
    debt: FloatArray
    lt: FloatArray
    debt_asset: IntArray
    slices: list[slice]
    names: list[str] = field(default_factory=list)
    # ledger (per position, in the position's own units)
    debt0: FloatArray = field(init=False)
    collateral0: FloatArray = field(init=False)
    repaid: FloatArray = field(init=False)
    written_off: FloatArray = field(init=False)
    collateral_in: FloatArray = field(init=False)
    collateral_out: FloatArray = field(init=False)
    debt_in: FloatArray = field(init=False)
    version: int = field(default=0, init=False)
    """Incremented by every :meth:`apply`: equal versions mean identical positions (for memos)."""
    protocol_version: list[int] = field(init=False)
    """Per protocol, incremented by every :meth:`apply` that may touch its rows: equal versions mean its
    positions are identical, whatever happened to other protocols' (memos of one protocol's state)."""
    _settled: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    locked: npt.NDArray[np.bool_] = field(init=False)  # in a running auction: borrowers leave it alone

    def __post_init__(self) -> None:
        n, a = self.collateral.shape
        self.debt0 = self.debt.copy()
        self.collateral0 = self.collateral.copy()
        self.repaid = np.zeros(n)
        self.written_off = np.zeros(n)
        self.debt_in = np.zeros(n)
        self.collateral_in = np.zeros((n, a))
        self.collateral_out = np.zeros((n, a))
        self.locked = np.zeros(n, dtype=bool)
        self.protocol_version = [0] * len(self.slices)

    @classmethod
    def of(cls, collateral: FloatArray, debt: FloatArray, lt: FloatArray, *, assets: list[str] | None = None,
           protocols: list[str] | None = None, protocol: IntArray | None = None,
           debt_asset: IntArray | None = None) -> PositionBook:
        """A book straight from arrays (tests, conformance checks); rows must be grouped by protocol.

        ``lt`` is (P, A) or (A,) for one protocol; ``debt_asset`` defaults to USD for every protocol.
        """
        collateral = np.atleast_2d(np.asarray(collateral, dtype=np.float64))
        n, a = collateral.shape
        lt = np.atleast_2d(np.asarray(lt, dtype=np.float64))
        n_p = lt.shape[0]
        protocol = np.zeros(n, dtype=np.int64) if protocol is None else np.asarray(protocol, dtype=np.int64)
        if (np.diff(protocol) < 0).any():
            raise ValueError("rows must be grouped by protocol (non-decreasing protocol index)")
        bounds = np.searchsorted(protocol, np.arange(n_p + 1))
        return cls(
            assets=assets or [f"A{i}" for i in range(a)],
            protocols=protocols or [f"P{i}" for i in range(n_p)],
            protocol=protocol,
            cohort=np.full(n, -1, dtype=np.int64),
            collateral=collateral.copy(),
            debt=np.asarray(debt, dtype=np.float64).copy(),
            lt=lt,
            debt_asset=np.full(n_p, a, dtype=np.int64) if debt_asset is None else np.asarray(debt_asset),
            slices=[slice(int(bounds[p]), int(bounds[p + 1])) for p in range(n_p)],
        )

    # ------------------------------------------------------------------ reading

    @property
    def n(self) -> int:
        return int(self.debt.shape[0])

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    def health(self, oracle_px: FloatArray, protocols: Iterable[int] | None = None) -> FloatArray:
        """Health of every position: sum_a C_a P_a LT_a / (D P_debt); +inf where there is no debt.

        ``oracle_px`` has shape (P, A + 1): each protocol's oracle prices, with the USD
        numeraire (price 1) as the last column.  Source: Aave v3 GenericLogic
        (shared/reference/mechanisms.md section 1.1).  A quotient too large for a float
        (dust debt) is +inf, like no debt.  With ``protocols``, only their rows are filled in
        (the others are left undefined), each with the bits the whole evaluation gives it.
        """
        hf = np.empty(self.n)
        single = self.n_assets == 1
        for p in range(len(self.slices)) if protocols is None else protocols:
            s = self.slices[p]
            if s.start == s.stop:
                continue
            px = oracle_px[p]
            weights = self.lt[p] * px[: self.n_assets]
            # one asset: the column product equals the matrix-vector product bit for bit, without BLAS overhead
            weighted = self.collateral[s, 0] * weights[0] if single else self.collateral[s] @ weights
            health_quotient(weighted, self.debt[s] * px[self.debt_asset[p]], out=hf[s])
        return hf

    def health_of(self, positions: IntArray, oracle_px: FloatArray) -> FloatArray:
        """Health of a subset of positions (same formula and rounding as before: (C LT) P / (D P_debt))."""
        p = self.protocol[positions]
        if self.n_assets == 1 and p.size and (p == p[0]).all():
            # one asset, one protocol (a borrower cohort): its prices shared by every row, no gathers
            q = p[0]
            return rows_health(self.collateral[positions], self.debt[positions], self.lt[q], oracle_px[q],
                               int(self.debt_asset[q]))
        return rows_health(self.collateral[positions], self.debt[positions], self.lt[p], oracle_px[p],
                           self.debt_asset[p])

    def collateral_value(self, px: FloatArray, positions: IntArray | slice | None = None) -> FloatArray:
        """USD value of each position's collateral at asset prices ``px`` (shape (A,) or (A+1,))."""
        sel = slice(None) if positions is None else positions
        return self.collateral[sel] @ px[: self.n_assets]

    def debt_value(self, px: FloatArray, positions: IntArray | slice | None = None) -> FloatArray:
        """USD value of each position's debt at prices ``px`` (shape (A+1,), USD last)."""
        sel = slice(None) if positions is None else positions
        return self.debt[sel] * px[self.debt_asset[self.protocol[sel]]]

    def debt_price(self, px: FloatArray, positions: IntArray) -> FloatArray:
        """Price of each position's debt asset under prices ``px`` (shape (A+1,))."""
        return px[self.debt_asset[self.protocol[positions]]]

    def without_collateral(self, protocol: int) -> IntArray:
        """Positions of ``protocol`` that owe debt but hold no collateral (to be written off).

        Scans the protocol's rows, except when nothing was applied to them since a scan that found
        none: positions change only through :meth:`apply`, so the answer is still none (a
        step without fills in this protocol costs O(1) here instead of O(positions)).
        """
        if self._settled.get(protocol) == self.protocol_version[protocol]:
            return np.zeros(0, dtype=np.int64)
        s = self.slices[protocol]
        coll = self.collateral[s]
        no_collateral = ~(coll[:, 0] > 0) if coll.shape[1] == 1 else ~(coll > 0).any(axis=1)
        candidates = np.flatnonzero(no_collateral)  # few: test debt on these only
        pos = candidates[self.debt[s][candidates] > 0] + s.start
        if pos.size == 0:
            self._settled[protocol] = self.protocol_version[protocol]
        return pos

    def open_positions(self, protocol: int | None = None) -> IntArray:
        """Positions that still have debt."""
        s = slice(None) if protocol is None else self.slices[protocol]
        offset = 0 if protocol is None else s.start
        return np.flatnonzero(self.debt[s] > DUST) + offset

    # ------------------------------------------------------------------ writing

    def apply(self, fills: Fills) -> None:
        """Apply fills (liquidations, write-offs, borrower actions): the book's one mutator.

        ``seized`` leaves the position (negative: collateral added), ``repaid`` and
        ``written_off`` reduce its debt (negative ``repaid``: debt added, as in a
        redistribution).  Floating-point residue below DUST is snapped to zero; a real
        overdraft raises, since it means a mechanism took more than was there.
        """
        if fills.size == 0:
            return
        self.version += 1
        pos = fills.position
        if len(self.slices) == 1:
            self.protocol_version[0] += 1
        else:  # rows are grouped by protocol: every protocol from the lowest row's to the highest row's
            for q in range(int(self.protocol[pos.min()]), int(self.protocol[pos.max()]) + 1):
                self.protocol_version[q] += 1
        np.subtract.at(self.collateral, pos, fills.seized)
        np.subtract.at(self.debt, pos, fills.repaid + fills.written_off)
        np.add.at(self.repaid, pos, np.maximum(fills.repaid, 0.0))
        np.add.at(self.debt_in, pos, np.maximum(-fills.repaid, 0.0))
        np.add.at(self.written_off, pos, fills.written_off)
        np.add.at(self.collateral_out, pos, np.maximum(fills.seized, 0.0))
        np.add.at(self.collateral_in, pos, np.maximum(-fills.seized, 0.0))
        self._snap(pos)

    def _snap(self, pos: IntArray) -> None:
        """Zero floating-point residue; what is snapped away is booked as collateral out / debt written
        off, so the ledger stays exact however often residue is snapped (a position listed twice in
        ``pos`` gets the same value twice, and fancy-index ``+=`` books it once).  Rows all above their
        residue keep their value and book +0.0 (the ledgers, sums from +0.0, are never -0.0), so a fill
        that leaves every row clear of residue writes nothing here."""
        _snap_rows(pos, self.collateral, self.collateral0, self.collateral_in, self.collateral_out,
                   "a fill seized more collateral than the position held")
        _snap_rows(pos, self.debt, self.debt0, self.debt_in, self.written_off,
                   "a fill repaid or wrote off more debt than the position owed")

    # ------------------------------------------------------------------ invariants

    def ledger_error(self) -> tuple[float, float]:
        """Largest relative violation of debt and collateral conservation over all positions.

        debt0 + debt_in - repaid - written_off == debt, and
        collateral0 + collateral_in - collateral_out == collateral (per asset).
        """
        d_scale = np.maximum(self.debt0 + self.debt_in, 1.0)
        d_err = np.abs(self.debt0 + self.debt_in - self.repaid - self.written_off - self.debt) / d_scale
        c_scale = np.maximum(self.collateral0 + self.collateral_in, 1.0)
        c_err = np.abs(self.collateral0 + self.collateral_in - self.collateral_out - self.collateral) / c_scale
        return float(d_err.max(initial=0.0)), float(c_err.max(initial=0.0))


def _snap_rows(pos: IntArray, value: FloatArray, start: FloatArray, added: FloatArray, removed: FloatArray,
               overdraft: str) -> None:
    """:meth:`PositionBook._snap` of one ledger: ``value`` (collateral or debt) of rows ``pos``, residue
    relative to ``start + added``, what is snapped away booked in ``removed``."""
    scale = np.maximum(start[pos] + added[pos], 1.0)
    v = value[pos]
    if (v > DUST * scale).all():  # every value is kept as it is and +0.0 would be booked: nothing to write
        return
    if (v < -DUST * scale * 1e3).any():
        raise ValueError(overdraft)
    value[pos] = np.where(np.abs(v) <= DUST * scale, 0.0, np.maximum(v, 0.0))
    removed[pos] += v - value[pos]


@dataclass(frozen=True)
class CohortIndex:
    """Which rows of the book each borrower cohort (one Mesa agent) owns."""

    population: list[str]
    positions: list[IntArray]


def build_book(spec: Spec, rng: np.random.Generator) -> tuple[PositionBook, CohortIndex]:
    """Create the book from explicit positions and generated populations, grouped by protocol.

    A population position draws its collateral value and its initial health (at the
    initial prices) from the given distributions; its debt follows from
    debt = collateral_value * LT / health.  Draws happen in spec order (populations in
    the order written), all from the run's ``book`` stream.
    """
    keep_freed_memory()  # large books: reuse freed temporaries instead of page-faulting (cascadelab.allocator)
    assets = spec.asset_names
    protocols = spec.protocol_names
    a_idx = {a: i for i, a in enumerate(assets)}
    n_assets = len(assets)
    px0 = np.array([spec.assets[a].initial_price for a in assets] + [1.0])
    lt = np.zeros((len(protocols), n_assets))
    debt_asset = np.zeros(len(protocols), dtype=np.int64)
    for p, name in enumerate(protocols):
        proto = spec.protocols[name]
        for a, market in proto.markets.items():
            lt[p, a_idx[a]] = market.liquidation_threshold
        debt_asset[p] = n_assets if proto.debt_asset == USD else a_idx[proto.debt_asset]

    # cohorts in population order, each population split into `cohorts` agents
    cohort_of_pop: dict[str, list[int]] = {}
    cohort_names: list[str] = []
    for name, pop in spec.populations.items():
        cohort_of_pop[name] = list(range(len(cohort_names), len(cohort_names) + pop.cohorts))
        cohort_names += [name] * pop.cohorts

    # draw every population first (spec order), so the book stream does not depend on protocol order
    drawn: dict[str, tuple[FloatArray, FloatArray, IntArray]] = {}
    for name, pop in spec.populations.items():
        p = protocols.index(pop.protocol)
        a = a_idx[pop.collateral_asset]
        value = pop.collateral_usd.sample(rng, pop.count)
        health = pop.health.sample(rng, pop.count)
        coll = np.zeros((pop.count, n_assets))
        coll[:, a] = value / px0[a]
        debt = value * lt[p, a] / health / px0[debt_asset[p]]
        cohort = np.asarray(cohort_of_pop[name], dtype=np.int64)[np.arange(pop.count) % pop.cohorts]
        drawn[name] = (coll, debt, cohort)

    blocks_c, blocks_d, blocks_p, blocks_k, names = [], [], [], [], []
    slices = []
    start = 0
    for p, pname in enumerate(protocols):
        for pos in spec.positions:
            if pos.protocol != pname:
                continue
            row = np.zeros((1, n_assets))
            for a, amount in pos.collateral.items():
                row[0, a_idx[a]] = amount
            blocks_c.append(row)
            blocks_d.append(np.array([pos.debt]))
            blocks_k.append(np.array([cohort_of_pop[pos.behaviour][0] if pos.behaviour else -1]))
            names.append(pos.name)
        for name, pop in spec.populations.items():
            if pop.protocol != pname:
                continue
            coll, debt, cohort = drawn[name]
            blocks_c.append(coll)
            blocks_d.append(debt)
            blocks_k.append(cohort)
            names += [""] * len(debt)
        stop = start + sum(len(b) for b in blocks_d[len(blocks_p):])
        blocks_p += [np.full(len(b), p, dtype=np.int64) for b in blocks_d[len(blocks_p):]]
        slices.append(slice(start, stop))
        start = stop

    def cat(blocks: list, shape: tuple, dtype: type) -> np.ndarray:
        return np.concatenate(blocks).astype(dtype) if blocks else np.zeros(shape, dtype=dtype)

    book = PositionBook(
        assets=assets,
        protocols=protocols,
        protocol=cat(blocks_p, (0,), np.int64),
        cohort=cat(blocks_k, (0,), np.int64),
        collateral=cat(blocks_c, (0, n_assets), np.float64),
        debt=cat(blocks_d, (0,), np.float64),
        lt=lt,
        debt_asset=debt_asset,
        slices=slices,
        names=names,
    )
    positions = [np.flatnonzero(book.cohort == k) for k in range(len(cohort_names))]
    return book, CohortIndex(population=cohort_names, positions=positions)
