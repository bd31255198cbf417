"""Who liquidated whom: generations, causes, the cascade graph and the contagion matrix.

Post-processing at the end of a run (vectorised over fills; one pass over steps).  For every
liquidation fill ``f`` of protocol ``p`` at step ``t`` we ask *which price moves made it
liquidatable*.  Its protocol's oracle reported, for each asset ``a``, the market price of
an observation step ``s_a`` (``Oracle.obs_step``), i.e. the fundamental ``F[s_a]`` times
the venue multiplier ``m_a(z)`` of the displacement ``z`` at that moment.  The venue keeps
``z`` split into parts by source (``liq:<p>``, ``delev:<p>``, ``noise``) that sum to ``z``
exactly, and the sale log splits each ``liq`` sale's ``dz`` over the fills it came from;
recovery multiplies every part by the same factor (``decay``).  So the displacement at
``s_a`` splits exactly into:

- ``noise`` (its part at ``s_a``), ``delev:<q>`` (parts), and for every earlier fill ``g``
  sold at step ``s_g < s_a``: ``dz_g * prod(decay[s_g+1 .. s_a])``; whatever the sale log
  does not explain of a ``liq:<q>`` part (keepers buying a priced debt asset) is kept as a
  protocol-level residual of ``liq:<q>``.

Observation timing: at step ``s`` the oracle sees the market after recovery and noise
trades (stage 3 of DESIGN.md section 4), before deleveraging and keeper sales of ``s``;
hence liq/delev parts at ``s`` are ``parts_end[s-1] * decay[s]`` and the noise part is
``parts_end[s]``.

**Generation.**  With ``v_a`` the position's weighted collateral per asset at the oracle
price and ``dv`` its debt value (both logged with the fill), the health it would have had
if only the sources in a set ``S`` had moved the venues is
``hf(S) = sum_a v_a m_a(z_a(S)) / m_a(z_a) / dv(S)`` (the debt asset, if priced, likewise);
``hf(all) = hf_oracle`` exactly.  Crossing sets are tried in order:

- level -1 (nothing): ``hf < 1`` means liquidatable at the fundamental of the oracle's own
  observation step -> generation 0, cause ``fundamental``;
- level 0 (noise only) -> generation 0, cause ``noise`` (noise is exogenous flow);
- level 1 (+ deleveraging sales, liq residuals, and liquidation sales of generation 0)
  -> generation 1; level ``k+1`` (+ sales of generation ``k``) -> generation ``k+1``.

The generation is the first level whose set pushes the health under 1.  Deleveraging is
counted like generation-0 selling: borrowers sell because the price fell (a fill it pushed
under is generation 1 with cause ``delev:<q>``).  A fill whose oracle health is >= 1 (a
second round in the same step, an auction taken after it was started) inherits the
generation and causes of the same position's latest fill taken below 1; without one it is
generation 0, cause ``fundamental``.

**Attribution** of an induced fill (generation >= 1) over the sources of its crossing set:
per asset, the USD the move cost the position's margin ``W - D`` (collateral: ``v_a(none)
- v_a(S)``; debt asset: the rise of the debt value) is split over the components moving in
the harmful direction, in proportion to their displacement.  This is exact where the
impact model is additive in price (``transient_impact`` linear: ``P/F - 1 = z``); for
``constant_product`` the parts are exact in log price and the USD split is proportional to
them; for the square-root curve each trade's part is its marginal effect in execution order
(venues.py).  Components moving the other way (a noise buy) get no share.  Shares sum to 1.

**Graph** (``edges``): for each induced fill, its largest fill parents (up to
``MAX_PARENTS``, weight = its share), and per source one edge with ``parent = -1`` carrying
the rest of that source's share (smaller fills, deleveraging, noise, residuals); a child's
weights sum to 1.  The largest parent of the critical generation (``generation - 1``) is
always listed, so the longest chain in the graph is ``cascade_depth`` = max generation.

``contagion[A][B]``: USD liquidated in protocol B attributed to liquidation sales of
protocol A (sum over B's fills of ``seized_usd * share of liq:A``).  ``causes[src][B]`` does
the same for every source plus ``fundamental``; each column sums to B's liquidated_usd.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from cascadelab.arrays import unique_inverse

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_PARENTS = 10
"""Fill parents listed per child in the graph (the rest of each source's share is one edge)."""

MATERIAL = 1e-9
"""Contributions below this fraction of a child's total are ignored when listing parents."""

LIQUIDATION = 0
"""Code of a liquidation fill in the fill log's ``kind`` column (``record.KINDS``)."""

FUNDAMENTAL = "fundamental"
"""Cause of a fill that was liquidatable at the fundamental price (generation 0)."""


@dataclass(frozen=True)
class CascadeInputs:
    """What the analysis needs from a run (arrays indexed by step 0..T)."""

    protocols: Sequence[str]
    assets: Sequence[str]
    multipliers: Sequence[Callable[[FloatArray], FloatArray]]  # per asset: P/F as a function of z
    parts: FloatArray  # (T+1, A, S) venue displacement parts by source at the end of each step
    decay: FloatArray  # (T+1, A) recovery factor applied to every part at each step
    oracle_step: IntArray  # (T+1, P, A) observation step of each protocol's oracle price
    oracle_px: FloatArray  # (T+1, P, A) oracle prices at each step
    shadow_px: FloatArray  # (T+1, P, A) the same oracles fed the fundamental
    lt: FloatArray  # (P, A)
    debt_asset: IntArray  # (P,) asset index of each protocol's debt; A = USD

    @property
    def source_names(self) -> list[str]:
        """Impact sources in venue-part order (model.Sources), then ``fundamental``."""
        return ([f"liq:{p}" for p in self.protocols] + [f"delev:{p}" for p in self.protocols]
                + ["noise", FUNDAMENTAL])


@dataclass(frozen=True)
class CascadeGraph:
    """What the cascade graph is built from; :meth:`frame` builds it.

    The metrics need only the generations and shares, so a run keeps this (a few arrays per
    fill and sale) and builds the graph when ``RunResult.cascade`` is first read.
    """

    source_names: list[str]
    decay: FloatArray  # (T+1, A)
    generation: IntArray
    shares: FloatArray
    req_obs: IntArray
    req_scale: FloatArray
    req_long: npt.NDArray[np.bool_]
    protocol: IntArray
    sale_fill: IntArray
    sale_step: IntArray
    sale_asset: IntArray
    sale_dz: FloatArray
    sale_proto: IntArray

    def frame(self) -> pd.DataFrame:
        """The graph's (parent, child, weight, source, parent_generation) rows; see the module docstring."""
        return _edges(self)


@dataclass
class CascadeResult:
    """Per-fill columns (aligned with the fill log), the graph (built on demand) and the matrices."""

    columns: dict[str, np.ndarray]
    graph: CascadeGraph
    contagion: dict[str, dict[str, float]]
    causes: dict[str, dict[str, float]]
    categories: dict[str, list[str]] = field(default_factory=dict)
    """Columns held as integer codes into these names (-1: none), made Categoricals with the frame."""

    @property
    def edges(self) -> pd.DataFrame:
        return self.graph.frame()


Columns = Mapping[str, np.ndarray]
"""A log as one array per column (``Recorder.fill_columns``: ``kind`` and ``protocol`` as integer codes)."""


def analyse(inp: CascadeInputs, fills: Columns, sales: Columns) -> CascadeResult:
    """Generations, causes, graph and contagion of one run (see the module docstring)."""
    P, A = len(inp.protocols), len(inp.assets)
    n_src = 2 * P + 2  # liq, delev, noise, fundamental
    fill_id = np.asarray(fills["fill_id"])
    n = fill_id.size
    if n and not np.array_equal(fill_id, np.arange(n)):
        raise ValueError("fill ids must be 0..n-1 in log order")
    protocol = np.asarray(fills["protocol"]).astype(np.int64)
    liq = np.asarray(fills["kind"]) == LIQUIDATION
    generation = np.full(n, -1, dtype=np.int64)
    shares = np.zeros((n, n_src))
    req_obs = np.zeros((n, A), dtype=np.int64)
    req_scale = np.zeros((n, A))
    req_long = np.ones((n, A), dtype=bool)

    idx = np.flatnonzero(liq)
    anchor = _anchors(fills, idx)
    sale_fill = np.asarray(sales["fill_id"])
    sale_step = np.asarray(sales["step"])
    sale_asset = np.asarray(sales["asset"])
    sale_dz = np.asarray(sales["dz"])
    sale_proto = protocol[sale_fill] if n else np.zeros(0, dtype=np.int64)
    sale_order = np.argsort(sale_step, kind="stable")
    sale_bounds = np.searchsorted(sale_step[sale_order], np.arange(inp.parts.shape[0] + 1))

    obs_liq, obs_delev, obs_noise = _observed_parts(inp)
    T = inp.parts.shape[0] - 1
    lookback = int(np.max(np.arange(T + 1)[:, None, None] - inp.oracle_step, initial=0)) + 1
    ring = lookback + 1
    gcap = 8
    C = np.zeros((ring, A, P, gcap))  # liq contributions by (asset, protocol, generation) at observation
    acc = np.zeros((A, P, gcap))  # sales of the previous step by generation
    steps = np.asarray(fills["step"])
    order = idx[np.argsort(steps[idx], kind="stable")]
    bounds = np.searchsorted(steps[order], np.arange(T + 2))

    hf_oracle = np.asarray(fills["hf_oracle"])
    state = _FillState.of(inp, fills, protocol, steps)
    # steps with liquidation fills or sales to classify or book; between them C only decays
    busy = np.flatnonzero((bounds[1: T + 2] > bounds[:T + 1]) | (sale_bounds[1:] > sale_bounds[:-1]))
    next_busy = np.full(T + 2, T + 1, dtype=np.int64)
    next_busy[busy] = busy
    next_busy = np.minimum.accumulate(next_busy[::-1])[::-1]
    acc_zero = True  # no sales in the previous step
    pending: list[_Induced] = []  # induced fills, attributed after the loop (their shares feed nothing in it)
    inherit: list[IntArray] = []  # fills that take their anchor's cause, once every cause is known
    s = 1
    while s <= T:
        if acc_zero and next_busy[s] > s:  # a quiet stretch: decay it in one call
            end = min(int(next_busy[s]), T + 1)
            _decay_stretch(C, ring, inp.decay, s, end - 1)
            s = end
            continue
        C[s % ring] = (C[(s - 1) % ring] + acc) * inp.decay[s][:, None, None]
        batch = order[bounds[s]: bounds[s + 1]]
        if batch.size:
            induced = _classify(inp, state, batch, s, C, ring, obs_liq, obs_delev, obs_noise, generation, shares)
            if induced is not None:
                pending.append(induced)
            late = batch[(hf_oracle[batch] >= 1.0) & (anchor[batch] >= 0)]
            if late.size:  # not liquidatable at the oracle: inherit the position's latest generation and cause
                generation[late] = generation[anchor[late]]
                inherit.append(late)
            if int(generation[batch].max()) + 1 >= gcap:  # room for the next generation's sales
                grow = gcap
                C = np.concatenate([C, np.zeros((ring, A, P, grow))], axis=3)
                gcap += grow
        acc = np.zeros((A, P, gcap))
        rows = sale_order[sale_bounds[s]: sale_bounds[s + 1]]
        acc_zero = rows.size == 0
        if rows.size:
            np.add.at(acc, (sale_asset[rows], sale_proto[rows], np.maximum(generation[sale_fill[rows]], 0)),
                      sale_dz[rows])
        s += 1
    _attribute(inp, state, steps, obs_noise, pending, shares, req_obs, req_scale, req_long)
    for late in inherit:
        src = anchor[late]
        shares[late] = shares[src]
        req_obs[late], req_scale[late], req_long[late] = req_obs[src], req_scale[src], req_long[src]

    graph = CascadeGraph(inp.source_names, inp.decay.copy(), generation, shares, req_obs, req_scale, req_long, protocol,
                         sale_fill, sale_step, sale_asset, sale_dz, sale_proto)
    seized = np.asarray(fills["seized_usd"])
    names = inp.source_names
    causes = {src: {p: float((seized * shares[:, j])[liq & (protocol == q)].sum()) for q, p in enumerate(inp.protocols)}
              for j, src in enumerate(names)}
    contagion = {a: dict(causes[f"liq:{a}"]) for a in inp.protocols}
    cause = np.where(liq, np.argmax(shares, axis=1), -1)
    columns: dict[str, np.ndarray] = {
        "generation": generation,
        "cause": cause,  # codes into the source names: a Categorical when the fills frame is built
        "cascade_only": _cascade_only(inp, fills, protocol, liq),
    }
    for j, src in enumerate(names):
        columns[f"share_{src}"] = shares[:, j]
    return CascadeResult(columns=columns, graph=graph, contagion=contagion, causes=causes,
                         categories={"cause": list(names)})


# ---------------------------------------------------------------------------- helpers


def _anchors(fills: Columns, idx: IntArray) -> IntArray:
    """For each liquidation fill: the latest fill (itself included) of its position taken at oracle health < 1."""
    anchor = np.full(np.asarray(fills["fill_id"]).size, -1, dtype=np.int64)
    if idx.size == 0:
        return anchor
    pos = np.asarray(fills["position"])[idx]
    below = np.asarray(fills["hf_oracle"])[idx] < 1.0
    anchor[idx[below]] = idx[below]  # a fill taken below 1 is its own anchor
    if below.all():
        return anchor
    # only the positions with a fill at or above 1 need their history searched
    keep = np.isin(pos, pos[~below])
    idx, pos, below = idx[keep], pos[keep], below[keep]
    order = np.argsort(pos, kind="stable")  # by position, fills in log order within each
    n = order.size
    rank = np.arange(n)
    last_below = np.maximum.accumulate(np.where(below[order], rank, -1))  # latest fill below 1 so far
    new_position = np.ones(n, dtype=bool)
    new_position[1:] = pos[order][1:] != pos[order][:-1]
    group_start = np.maximum.accumulate(np.where(new_position, rank, 0))
    anchor[idx[order]] = np.where(last_below >= group_start, idx[order][np.maximum(last_below, 0)], -1)
    return anchor


def _decay_stretch(C: FloatArray, ring: int, decay: FloatArray, first: int, last: int) -> None:
    """Steps ``first..last`` of the ring ``C`` when nothing was sold in them or the step before:
    ``C[s % ring] = (C[(s - 1) % ring] + 0.0) * decay[s]`` for each, bit for bit, in one call.

    ``np.multiply.accumulate`` multiplies in the same sequence; adding 0.0 only turns -0.0 into
    +0.0, so a value after a zero is set to +0.0, as the step-by-step sum would leave it.
    """
    n = last - first + 1
    u = np.empty((n + 1,) + C.shape[1:])
    u[0] = C[(first - 1) % ring] + 0.0
    u[1:] = decay[first: last + 1][:, :, None, None]
    np.multiply.accumulate(u, axis=0, out=u)
    u[2:][u[1:-1] == 0.0] = 0.0
    keep = min(n, ring)
    steps = np.arange(last - keep + 1, last + 1)
    C[steps % ring] = u[n + 1 - keep:]


def _observed_parts(inp: CascadeInputs) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Parts as the oracle observed them at each step: liq (T+1, A, P), delev (T+1, A, P), noise (T+1, A)."""
    P = len(inp.protocols)
    prev = np.concatenate([np.zeros_like(inp.parts[:1]), inp.parts[:-1]]) * inp.decay[:, :, None]
    return prev[:, :, :P], prev[:, :, P: 2 * P], inp.parts[:, :, 2 * P]


def _levels(inp: CascadeInputs, s_obs: IntArray, C: FloatArray, ring: int, obs_liq: FloatArray,
            obs_delev: FloatArray, obs_noise: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Displacement of each (fill, asset) under the crossing sets, and its components.

    Returns z_levels (n, A, L) for levels -1, 0, 1, ..., gcap; the liq contributions by
    generation (n, A, P, G); the liq residuals (n, A, P); and the delev parts (n, A, P).
    """
    n, A = s_obs.shape
    a_idx = np.arange(A)[None, :]
    noise = obs_noise[s_obs, a_idx]
    delev = obs_delev[s_obs, a_idx]
    total_liq = obs_liq[s_obs, a_idx]
    cg = C[s_obs % ring, a_idx]  # (n, A, P, G)
    resid = total_liq - cg.sum(axis=3)
    level1 = noise + delev.sum(axis=2) + resid.sum(axis=2) + cg[:, :, :, 0].sum(axis=2)
    later = cg[:, :, :, 1:].sum(axis=2)  # (n, A, G-1)
    z = np.concatenate([np.zeros((n, A, 1)), noise[:, :, None], level1[:, :, None]], axis=2)
    z = np.concatenate([z, level1[:, :, None] + np.cumsum(later, axis=2)], axis=2)
    return z, cg, resid, delev


@dataclass(frozen=True)
class _FillState:
    """Each fill's position just before it, valued at its protocol's oracle prices of its step (made once
    for the whole log, then read per step): weighted collateral per asset (n, A), debt value, the debt
    asset's column (0 for USD) and whether it is priced; and the fill's protocol."""

    protocol: IntArray
    weighted: FloatArray
    debt_value: FloatArray
    debt_col: IntArray
    priced: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, inp: CascadeInputs, fills: Columns, protocol: IntArray, steps: IntArray) -> _FillState:
        coll = np.stack([np.asarray(fills[f"collateral_{a}_before"]) for a in inp.assets], axis=1)
        n, A = coll.shape
        px = inp.oracle_px[steps, protocol, :]
        d_asset = inp.debt_asset[protocol]
        priced = d_asset < A
        d_col = np.where(priced, d_asset, 0)
        debt_px = np.where(priced, px[np.arange(n), d_col], 1.0)
        return cls(protocol, coll * inp.lt[protocol] * px, np.asarray(fills["debt_before"]) * debt_px, d_col, priced)


@dataclass(frozen=True)
class _Induced:
    """The induced fills of one step (crossing level >= 1), as :func:`_classify` leaves them for
    :func:`_attribute`: their rows and levels, and the per-protocol-row arrays of that step they index."""

    rows: IntArray  # fill ids
    level: IntArray
    unique_row: IntArray  # index into the arrays below (one row per protocol with fills that step)
    rel: FloatArray  # (u, A, L) price relative to the observed one at each level
    cg: FloatArray  # (u, A, P, G) liq contributions by generation
    resid: FloatArray  # (u, A, P)
    delev: FloatArray  # (u, A, P)


def _classify(inp: CascadeInputs, state: _FillState, batch: IntArray, t: int, C: FloatArray, ring: int,
              obs_liq: FloatArray, obs_delev: FloatArray, obs_noise: FloatArray, generation: IntArray,
              shares: FloatArray) -> _Induced | None:
    """Generation of the liquidation fills of one step, and the shares of those not induced (written into
    the arrays); the induced ones are returned for :func:`_attribute`.

    Only the generations feed the next steps (through the sales in ``C``), so the attribution, most of
    the arithmetic, is made once for every induced fill of the run instead of step by step."""
    P, A = len(inp.protocols), len(inp.assets)
    n = batch.size
    p = state.protocol[batch]
    # the levels depend on a fill only through its protocol's observation steps: one row per protocol
    one, row = unique_inverse(p)
    z, cg, resid, delev = _levels(inp, inp.oracle_step[t, one, :], C, ring, obs_liq, obs_delev, obs_noise)
    z_all = z[:, :, -1]
    rel_u = np.stack([np.asarray(inp.multipliers[a](z[:, a, :])) / np.asarray(inp.multipliers[a](z_all[:, a]))[:, None]
                      for a in range(A)], axis=1)
    hf = _health_at_levels(state.weighted[batch], state.debt_value[batch], state.debt_col[batch],
                           state.priced[batch], rel_u, row)
    under = hf < 1.0
    level = np.where(under.any(axis=1), np.argmax(under, axis=1) - 1, -2)  # -2: never under
    generation[batch] = np.maximum(level, 0)
    sh = np.zeros((n, 2 * P + 2))
    sh[level <= -1, -1] = 1.0  # fundamental (or never under at the oracle)
    sh[level == 0, 2 * P] = 1.0  # noise
    shares[batch] = sh  # induced rows: zeros until attributed
    ind = np.flatnonzero(level >= 1)
    if ind.size == 0:
        return None
    return _Induced(batch[ind], level[ind], row[ind], rel_u, cg, resid, delev)


def _health_at_levels(v: FloatArray, dv: FloatArray, d_idx: IntArray, priced: npt.NDArray[np.bool_],
                      rel_u: FloatArray, row: IntArray) -> FloatArray:
    """Health (n, L) of fills with weighted collateral ``v`` (n, A) and debt value ``dv`` at each crossing
    level's prices, relative to the observed ones: ``rel_u[row]`` (n, A, L); inf without debt.

    With one asset and USD debt the einsum over assets is a single product and the debt price 1, so
    ``v * rel / dv`` gives the same bits without gathering a row per fill (tests/test_fast_paths.py)."""
    n, A = v.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        if A == 1 and not priced.any():
            hf = v * (rel_u[0, 0] if rel_u.shape[0] == 1 else rel_u[row, 0, :]) / dv[:, None]
        else:
            rel = rel_u[row]
            d_rel = np.where(priced[:, None], rel[np.arange(n), d_idx, :], 1.0)  # (n, L)
            hf = np.einsum("na,nal->nl", v, rel) / (dv[:, None] * d_rel)
    return hf if (dv > 0).all() else np.where(dv[:, None] > 0, hf, np.inf)


def _attribute(inp: CascadeInputs, state: _FillState, steps: IntArray, obs_noise: FloatArray,
               pending: list[_Induced], shares: FloatArray, req_obs: IntArray, req_scale: FloatArray,
               req_long: npt.NDArray[np.bool_]) -> None:
    """Source shares of every induced fill (see the module docstring), written into the arrays; in one
    pass per number of generations (the steps' arrays stacked), row for row as step by step."""
    P, A = len(inp.protocols), len(inp.assets)
    by_width: dict[int, list[_Induced]] = {}
    for step in pending:
        by_width.setdefault(step.cg.shape[3], []).append(step)
    for group in by_width.values():
        offsets = np.cumsum([0] + [g.rel.shape[0] for g in group[:-1]])
        u = np.concatenate([g.unique_row + off for g, off in zip(group, offsets, strict=True)])
        rows = np.concatenate([g.rows for g in group])
        k = np.concatenate([g.level for g in group])
        rel = np.concatenate([g.rel for g in group])  # per step-and-protocol row: indexed through u
        cg = np.concatenate([g.cg for g in group])
        resid = np.concatenate([g.resid for g in group])[u]
        delev = np.concatenate([g.delev for g in group])[u]
        m = rows.size
        r = np.arange(m)
        s_obs = inp.oracle_step[steps[rows], state.protocol[rows], :]
        v, dv, d_idx, priced = state.weighted[rows], state.debt_value[rows], state.debt_col[rows], state.priced[rows]
        rel_none, rel_k = rel[u, :, 0], rel[u, :, k + 1]  # level index = level + 1
        # change of the margin W - D owed to each asset's move (USD), and its harmful direction
        debt_of = np.zeros((m, A))
        debt_of[r[priced], d_idx[priced]] = dv[priced]
        harm = v * (rel_none - rel_k) - debt_of * (rel_none - rel_k)
        long = v >= debt_of  # net long the asset: price falls hurt
        h = np.maximum(harm, 0.0)
        sign = np.where(long, -1.0, 1.0)
        comp_noise = np.maximum(sign * obs_noise[s_obs, np.arange(A)[None, :]], 0.0)  # (m, A)
        comp_delev = np.maximum(sign[:, :, None] * delev, 0.0)  # (m, A, P)
        comp_liq = np.maximum(sign[:, :, None] * resid, 0.0) + _earlier_generations(cg, u, k, long)
        total = comp_noise + comp_delev.sum(axis=2) + comp_liq.sum(axis=2)  # (m, A)
        h = np.where(total > 0, h, 0.0)
        hsum = h.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(total > 0, h / total, 0.0) / np.where(hsum > 0, hsum, 1.0)[:, None]
        sh = np.zeros((m, 2 * P + 2))
        sh[:, :P] = np.einsum("maq,ma->mq", comp_liq, scale)
        sh[:, P: 2 * P] = np.einsum("maq,ma->mq", comp_delev, scale)
        sh[:, 2 * P] = (comp_noise * scale).sum(axis=1)
        sh[hsum <= 0, -1] = 1.0  # numerically no harm: count as fundamental
        shares[rows] = sh
        req_obs[rows] = s_obs
        req_scale[rows] = scale
        req_long[rows] = long


def _earlier_generations(cg: FloatArray, u: IntArray, k: IntArray, long: npt.NDArray[np.bool_]) -> FloatArray:
    """Each induced fill's harmful liq contributions of generations 0 .. k-1 by (asset, protocol): the sum
    over generations g < k of max(sign * cg[u, :, :, g], 0), sign -1 where the fill is net long the asset.

    It depends on a fill only through its step-and-protocol row u, its level k and its long pattern, and
    a step's fills share a handful of those: the sum is made once per distinct triple (the same einsum
    on the same rows, so the same bits) and read back per fill.
    """
    A, G = cg.shape[1], cg.shape[3]
    pattern = long.astype(np.int64) @ (1 << np.arange(A, dtype=np.int64))
    key = (u.astype(np.int64) * (G + 2) + k) * (1 << A) + pattern
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    sign = np.where(long[first], -1.0, 1.0)
    gmask = np.arange(G)[None, :] < k[first][:, None]  # generations <= k - 1
    return np.einsum("maqg,mg->maq", np.maximum(sign[:, :, None, None] * cg[u[first]], 0.0), gmask)[inverse]


def _edges(g: CascadeGraph) -> pd.DataFrame:
    """The cascade graph: (parent, child, weight, source, parent_generation) rows; see the module docstring."""
    names = g.source_names
    n_src = len(names)
    generation, shares, req_obs, req_scale, req_long = g.generation, g.shares, g.req_obs, g.req_scale, g.req_long
    sale_fill, sale_step, sale_asset, sale_dz, sale_proto = g.sale_fill, g.sale_step, g.sale_asset, g.sale_dz, g.sale_proto
    decay = g.decay
    children = np.flatnonzero((generation >= 1) & (shares[:, -1] < 1.0))
    logd = np.cumsum(np.log(np.maximum(decay, 1e-300)), axis=0)  # (T+1, A)
    sale_gen = np.maximum(generation[sale_fill], 0) if sale_fill.size else np.zeros(0, dtype=np.int64)
    # only the MAX_PARENTS largest fills of each (asset, step, generation) can be a child's largest parents;
    # kept rows are sorted by (asset, step)
    keep = _top_per_group(sale_asset, sale_step, sale_gen, sale_dz)
    ka, ks, kg, kdz, kf, kp = (sale_asset[keep], sale_step[keep], sale_gen[keep], sale_dz[keep], sale_fill[keep],
                               sale_proto[keep])
    T = decay.shape[0] - 1
    first_row = np.searchsorted(ka * (T + 2) + ks, np.arange(decay.shape[1] * (T + 2)))  # by (asset, step)
    parts: list[tuple[np.ndarray, ...]] = []
    kept = np.zeros((children.size, n_src))
    if children.size and keep.size:
        ci_all, a_all = np.nonzero((req_scale[children] > 0) & req_long[children])
        s_all = req_obs[children[ci_all], a_all]
        g_all = generation[children[ci_all]] - 1
        # groups by (asset, step, generation) in lexicographic order: one integer key per row
        n_gen = int(g_all.max(initial=0)) + 1
        keys, inverse = np.unique((a_all * (T + 2) + s_all) * n_gen + g_all, return_inverse=True)
        groups = np.stack([keys // n_gen // (T + 2), keys // n_gen % (T + 2), keys % n_gen], axis=1)
        by_group = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[by_group], np.arange(len(groups) + 1))
        rising = [np.ascontiguousarray(-logd[:, a]) for a in range(logd.shape[1])]  # -logd is non-decreasing
        horizon = np.log(1e12)
        kept_at: list[tuple[np.ndarray, np.ndarray]] = []
        kept_w: list[np.ndarray] = []
        for j, (a, s, g) in enumerate(groups):
            lo_step = np.searchsorted(rising[a], -logd[s, a] - horizon, side="left")
            rows = np.arange(first_row[a * (T + 2) + lo_step], first_row[a * (T + 2) + s])
            cand = rows[kg[rows] <= g]
            if cand.size == 0:
                continue
            harm = -kdz[cand] * np.exp(logd[s, a] - logd[ks[cand], a])
            material = harm >= MATERIAL * harm.sum()
            top, harm = cand[material], harm[material]
            best = np.argpartition(-harm, MAX_PARENTS)[:MAX_PARENTS] if harm.size > MAX_PARENTS else np.arange(harm.size)
            best = best[np.argsort(-harm[best], kind="stable")]
            crit = np.flatnonzero(kg[top] == g)  # the critical generation must stay in the graph
            if crit.size and not (kg[top[best]] == g).any():
                best = np.concatenate((best[: MAX_PARENTS - 1], crit[np.argmax(harm[crit])][None]))
            chosen = top[best]
            ci = ci_all[by_group[bounds[j]: bounds[j + 1]]]
            w = req_scale[children[ci], a][:, None] * harm[best][None, :]  # (m, K)
            k = chosen.size
            parts.append((np.tile(kf[chosen], ci.size), np.repeat(children[ci], k), w.ravel(),
                          np.tile(kp[chosen], ci.size), np.tile(kg[chosen], ci.size)))
            kept_at.append((np.repeat(ci, k), parts[-1][3]))
            kept_w.append(parts[-1][2])
        if kept_at:  # one add.at over all groups, in group order: the same additions in the same order
            np.add.at(kept, (np.concatenate([r for r, _ in kept_at]), np.concatenate([c for _, c in kept_at])),
                      np.concatenate(kept_w))
    resid = shares[children] - kept
    ri, rs = np.nonzero(resid > 1e-12)
    parts.append((np.full(ri.size, -1), children[ri], resid[ri, rs], rs, np.full(ri.size, -1)))
    cols = [np.concatenate([pt[j] for pt in parts]) for j in range(5)]
    order = np.lexsort((-cols[2], cols[1]))
    return pd.DataFrame({
        "parent": cols[0][order].astype(np.int64),
        "child": cols[1][order].astype(np.int64),
        "weight": cols[2][order].astype(np.float64),
        "source": pd.Categorical.from_codes(cols[3][order].astype(np.int64), categories=names),
        "parent_generation": cols[4][order].astype(np.int64),
    })


def _top_per_group(asset: IntArray, step: IntArray, gen: IntArray, dz: FloatArray) -> IntArray:
    """Rows among the MAX_PARENTS most negative dz of each (asset, step, generation), with dz < 0, by (asset, step)."""
    if asset.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((dz, gen, step, asset))
    key = np.stack([asset[order], step[order], gen[order]], axis=1)
    start = np.r_[True, (np.diff(key, axis=0) != 0).any(axis=1)]
    rank = np.arange(order.size) - np.maximum.accumulate(np.where(start, np.arange(order.size), 0))
    return order[(rank < MAX_PARENTS) & (dz[order] < 0)]


def _first_fills(pos: IntArray, idx: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """For fills ``idx`` (ascending, of ``n``) on positions ``pos``: the first of them on each fill's
    position, and those first fills ascending.  A scatter of the minimum, not a sort: O(fills)."""
    first_of = np.full(int(pos.max()) + 1, n, dtype=np.int64)
    np.minimum.at(first_of, pos, idx)
    return first_of[pos], np.sort(first_of[first_of < n])


def _cascade_only(inp: CascadeInputs, fills: Columns, protocol: IntArray, liq: npt.NDArray[np.bool_],
                  chunk: int = 2048) -> npt.NDArray[np.bool_]:
    """Liquidations of positions that would never have been liquidatable at the fundamental within the horizon.

    The position is taken as it stood just before its first liquidation fill; its health at
    the shadow oracle (the protocol's oracle fed the fundamental) is evaluated at every step
    0..T, and the fill counts when that health never falls below 1.
    """
    out = np.zeros(liq.size, dtype=bool)
    idx = np.flatnonzero(liq)
    if idx.size == 0:
        return out
    A = len(inp.assets)
    first, uniq = _first_fills(np.asarray(fills["position"])[idx], idx, liq.size)
    coll = np.stack([np.asarray(fills[f"collateral_{a}_before"])[uniq] for a in inp.assets], axis=1)
    debt = np.asarray(fills["debt_before"])[uniq]
    p = protocol[uniq]
    never = np.zeros(uniq.size, dtype=bool)
    lowest = inp.shadow_px.min(axis=0)  # (P, A)
    for q in np.unique(p):
        sel = np.flatnonzero(p == q)
        px = inp.shadow_px[:, q, :]  # (T+1, A)
        d = inp.debt_asset[q]
        if d == A:  # USD debt: one collateral asset needs only its lowest price
            one = (coll[sel] > 0).sum(axis=1) <= 1
            single = sel[one]
            never[single] = ((coll[single] * inp.lt[q] * lowest[q]).sum(axis=1) >= debt[single]) & (debt[single] > 0)
            sel = sel[~one]  # the others, in order (np.setdiff1d's answer, without its sorts)
        debt_px = px[:, d] if d < A else np.ones(px.shape[0])
        for lo in range(0, sel.size, chunk):
            rows = sel[lo: lo + chunk]
            weighted = (coll[rows] * inp.lt[q]) @ px.T  # (k, T+1)
            owed = debt[rows][:, None] * debt_px[None, :]
            never[rows] = (weighted >= owed).all(axis=1) & (debt[rows] > 0)
    slot = np.empty(liq.size, dtype=np.int64)
    slot[uniq] = np.arange(uniq.size)
    out[idx] = never[slot[first]]
    return out
