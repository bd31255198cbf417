"""A proof, without building the offers or asking any keeper, that nobody takes a linear offer this round.

A keeper takes a clip of an offer only if its profit (proceeds of selling the collateral after the
sales already planned this step, minus the cost of the debt asset paid, minus gas) meets its
profit rule, and every rule asks at least ``min_profit_usd`` (``agents.liquidators.STRATEGIES``).
The mechanism's :class:`~mechanisms.base.OfferCeiling` says no clip of position i pays more than
M_i or receives more than R_i units per unit paid; every unit of debt asset costs at least its
market price c (purchases are convex).  So a clip paying x earns before gas at most
h_i(x) = S(x R_i) - c x, x in (0, M_i], where S is the venues' proceeds, concave in size
(``Venue.marginal_sell`` never rises).  h_i is concave, hence

- if h_i'(M_i) >= 0 it rises all the way and its supremum is h_i(M_i);
- otherwise the tangents at M_i and at 0 both lie above it: the supremum is at most
  min(h_i(M_i) - h_i'(M_i) M_i, max(h_i'(0), 0) M_i), where h_i'(0) <= R_i . (price net of fee) - c.

If every supremum, plus the rounding allowance of ``Liquidator.may_pay_off``, stays below the
lowest ``min_profit_usd`` + gas of any keeper configuration, no keeper takes anything: the model
skips building the offers and the bids, and the round ends as it would have, with no bids.  It
pays in steps where positions are liquidatable but not worth taking (small positions under a
keeper's minimum profit, an offer a few cents short of it), which made up most steps of many
study runs at 5-8 times the cost of a quiet step (benchmarks/PROFILE.md sections 12-13).  The
bound follows the venue's curve, so an offer at $99.8 against a $100 minimum is proved
unprofitable while prices move it no closer.

Re-checking the proof costs a few scalar operations while only prices move (:class:`TakeBound`):
the next ceiling of the same basis is the last one's times scalars (receive per pay by gamma, pay
by at most mu), and each venue's proceeds at most kappa_a times the last ones at the same size
(constant product: proceeds are v / (1 + v / D) in the clip's value v at the price P and the pool's
depth D = L sqrt(P); with r = P'/P the ratio at the same pay is r gamma (1 + q) / (1 + gamma sqrt(r) q),
q = v / D, monotone in q, so kappa is its larger end over q in [0, mu Q], Q the largest clip's q at
the proof (ratio = clip size over the pool's reserve); no impact: F'/F gamma;
transient impact: F'/F gamma while the venue has not recovered upward since, as proceeds fall
with the volume already sold).  Concavity then bounds every new clip's profit by
mu max(H + (kappa - 1) V, 0) + max(c - c', 0) mu M, from the last proof's highest bound H, highest
proceeds V and largest pay M (c, c': the debt asset's price then and now), and the rounding
allowance grows with kappa, mu and c'/c.  Rows paying their cap (``pay_cap``) cannot pay more later,
so they form a group of their own, charged 1 instead of mu.  Proofs are re-checked only if no sales were planned
then or now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mechanisms.base import OfferCeiling

if TYPE_CHECKING:
    from cascadelab.model import CascadeModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


ROUNDING = 1e-9
"""Rounding allowance per USD of a clip's proceeds plus what it owes.  Proceeds, cost and profit are a few
float operations each (relative error ~1e-15), so this is 10^6 times what rounding can move them; with
the depth slack of ``CascadeModel.trade_bounds`` it decides only rounds within cents of the threshold."""


def best_profit_bound(model: CascadeModel, p: int, ceiling: OfferCeiling
                      ) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Per ceiling row: an upper bound on the best profit before gas of any clip, the proceeds of the
    largest clip, and the rounding allowance; and the debt asset's price the bound used."""
    pay, per_pay = ceiling.max_pay, ceiling.receive_per_pay
    net, debt_px, slack = model.trade_bounds(p)
    units = pay[:, None] * per_pay
    value = model.quote_sales(units)
    owed = debt_px * pay
    at_end = value - owed
    slope_end = model.sales_slope(units, per_pay) - debt_px
    slope_start = np.maximum(per_pay @ net - debt_px, 0.0)
    bound = np.where(slope_end >= 0.0, at_end, np.minimum(at_end - slope_end * pay, slope_start * pay))
    return bound, value, ROUNDING * (value + owed) + slack, debt_px


@dataclass(frozen=True)
class _Maxima:
    """The highest bound, proceeds, pay and allowance over a group of a proof's rows (the scalar re-check)."""

    grows: bool  # the group's pay ceilings can grow with the ceiling's pay scale (else they cannot grow)
    top: float  # H: highest bound on a row's profit before gas
    value: float  # V: highest proceeds of a row's largest clip
    pay: float  # M: highest pay ceiling
    allowance: float  # highest rounding allowance


@dataclass(frozen=True)
class _Proof:
    """A proof by the full bound, with what re-checking it needs: the group maxima for the scalar re-check
    (:meth:`TakeBound._proof`), and the rows' own for the re-check row by row."""

    ceiling: OfferCeiling
    bounds: FloatArray  # per row: H_i, V_i, M_i, and the rounding allowance
    values: FloatArray
    pays: FloatArray
    allowances: FloatArray
    groups: tuple[_Maxima, ...]
    debt_px: float
    price: FloatArray  # market price per asset
    fundamental: FloatArray
    z: FloatArray  # venue states
    assets: IntArray  # assets some row receives
    size: FloatArray  # per asset: the largest clip's units after the fee over the pool's reserve (constant product)


def constant_product_growth(r: float, gamma: float, q: float) -> float:
    """The factor (at least 1) by which a constant-product pool's proceeds of a clip can have grown since a proof.

    At the same pay the clip's value v becomes r gamma v (r: the pool's price ratio, gamma: the ratio of
    units received per unit paid) and the depth D = L sqrt(P) becomes sqrt(r) D, so proceeds
    v / (1 + v / D) grow by r gamma (1 + q) / (1 + gamma sqrt(r) q), q = v / D.  That ratio is monotone
    in q (from r gamma at q = 0 to sqrt(r) as q grows), so over every clip no larger than q it is at most
    the larger of its two ends.  Clips small against the pool (the usual case) grow by about r gamma.
    """
    g = r * gamma
    end = g * (1.0 + q) / (1.0 + gamma * math.sqrt(r) * q) if q < math.inf else math.sqrt(r)
    return math.nan if math.isnan(g + end) else max(g, end, 1.0)  # max() would drop a NaN


MAX_WAIT = 64
"""After failed tries in a row the next waits 1, 2, 4, ... up to this many steps."""


class TakeBound:
    """Proves, round by round, that no keeper takes any of one protocol's linear offers; and when to try."""

    def __init__(self, model: CascadeModel, p: int) -> None:
        self.model = model
        self.p = p
        self.worth_trying = True
        """False after a round that found something worth taking (until one finds nothing): the keepers
        could not take it (capital, gas), but a proof that nothing is worth taking would fail."""
        self._last: _Proof | None = None
        self._retry = 0  # step before which not to try again (after a failed try)
        self._wait = 1  # the wait after the next failed try

    def due(self, t: int, n_liquidatable: int) -> bool:
        """Whether to try the proof at step t: a proof over a large set that keeps failing (its rows change
        every step) would double the cost of every round, so failed tries back off.

        Small sets are tried too: building offers and bids for 2 positions costs ~90 us, a full proof
        about as much, and its re-check at new prices ~15 us (benchmarks/PROFILE.md section 15)."""
        return self.worth_trying and t >= self._retry and n_liquidatable > 0

    def nobody_takes(self, ceiling: OfferCeiling, threshold: float) -> bool:
        """True if no clip under ``ceiling`` can earn ``threshold`` (the lowest min_profit_usd + gas of the keepers).

        A try that holds clears the back-off (try again at the next step); one that fails waits 1, 2, 4, ...
        steps.  Only tries count: a round without a ceiling to try (new positions whose offers were never
        built) leaves the back-off as it was, or every step in which the set grows would lengthen it."""
        last = self._last
        if last is not None and last.ceiling.basis is ceiling.basis and self._still_holds(last, ceiling, threshold):
            holds = True
        else:
            holds, self._last = self._prove(ceiling, threshold)
        if holds:
            self._retry, self._wait = 0, 1
        else:
            self._retry = self.model.t + self._wait
            self._wait = min(2 * self._wait, MAX_WAIT)
        return holds

    def _prove(self, ceiling: OfferCeiling, threshold: float) -> tuple[bool, _Proof | None]:
        """The full bound: whether it holds, and the proof to re-check later (None if it cannot be)."""
        if ceiling.size == 0:
            return True, None
        bound, value, allowance, debt_px = best_profit_bound(self.model, self.p, ceiling)
        if not np.all(bound + allowance < threshold):  # False with any NaN
            return False, None
        m = self.model
        if not m.nothing_planned:  # re-checks assume no sales planned, then as now
            return True, None
        return True, self._proof(ceiling, bound, value, allowance, debt_px,
                                 np.flatnonzero(ceiling.receive_base.any(axis=0)))

    def _proof(self, ceiling: OfferCeiling, bounds: FloatArray, values: FloatArray, allowances: FloatArray,
               debt_px: float, assets: IntArray) -> _Proof:
        """A proof from per-row bounds valid now, with the market state the re-checks compare against.

        The rows are split for the scalar re-check: a row paying its cap (``pay_cap``) can pay no more
        later, whatever the pay scale does; only the others grow with it.  When prices rise, the rows
        closest to the threshold are usually capped by the close factor, so charging the pay growth to
        the others only lets the scalar re-check hold where it would otherwise go row by row."""
        m = self.model
        price = m.market_px()
        pays = ceiling.max_pay
        largest = (pays[:, None] * ceiling.receive_per_pay).max(axis=0)
        size = np.array([v.size_ratio(q, px) for v, q, px in zip(m.venues, largest, price, strict=True)])
        capped = pays >= ceiling.pay_cap
        groups = tuple(_Maxima(grows, float(bounds[rows].max()), float(values[rows].max()), float(pays[rows].max()),
                               float(allowances[rows].max()))
                       for grows, rows in ((False, capped), (True, ~capped)) if rows.any())
        return _Proof(ceiling, bounds, values, pays, allowances, groups, debt_px, price, m.fundamental[m.t].copy(),
                      np.array([v.z for v in m.venues]), assets, size)

    def _still_holds(self, last: _Proof, ceiling: OfferCeiling, threshold: float) -> bool:
        """The last proof, carried to the current prices by the scalar bound of the module docstring, and
        if that fails, by the same bound row by row (:meth:`_rows_hold`)."""
        m = self.model
        if not m.nothing_planned:
            return False
        f = m.fundamental[m.t]
        gamma = ceiling.receive_scale / last.ceiling.receive_scale
        mu = max(ceiling.pay_scale / last.ceiling.pay_scale, 1.0)
        kappa = 1.0
        for a in last.assets:
            venue = m.venues[a]
            if venue.kind == "constant_product":
                growth = constant_product_growth(venue.price(f[a]) / last.price[a], gamma, mu * last.size[a])
                if not growth < math.inf:  # NaN or inf
                    return False
                kappa = max(kappa, growth)
            else:
                if venue.kind == "transient_impact" and venue.z > last.z[a]:
                    return False
                kappa = max(kappa, f[a] / last.fundamental[a] * gamma)
        da = m.book.debt_asset[self.p]
        debt_px = m.venues[da].price(f[da]) if da < m.n_assets else 1.0  # as in market_px_ext, without the array
        if not kappa < math.inf:
            return False
        drop, rise = max(last.debt_px - debt_px, 0.0), max(debt_px / last.debt_px, 1.0)
        holds = all((mu if g.grows else 1.0) * (max(g.top + (kappa - 1.0) * g.value, 0.0) + drop * g.pay
                                                + g.allowance * kappa * rise) < threshold  # False for NaN
                    for g in last.groups)
        return holds or self._rows_hold(last, ceiling, threshold, kappa, debt_px)

    def _rows_hold(self, last: _Proof, ceiling: OfferCeiling, threshold: float, kappa: float, debt_px: float
                   ) -> bool:
        """The scalar bound with each row's own H_i, V_i, M_i and pay growth mu_i = M_i' / M_i; if it holds,
        the rows' bounds now become the proof the next re-check starts from.

        The scalar bound charges every row the largest pay growth and the highest bound at once.  When
        prices rise, a position whose pay is limited by its collateral may pay more (mu > 1) while the row
        closest to the threshold is capped by the close factor (mu_i = 1): a margin of cents fails the
        scalar bound and holds here.  The carried bounds are upper bounds now (profit H_i', proceeds of the
        largest clip kappa mu_i V_i by concavity, allowance), which is all a re-check assumes of a proof;
        without carrying them every later re-check would start from the old proof and go row by row.
        Two dozen array operations, against ~75 us for a full proof."""
        pays = ceiling.max_pay  # a row with no pay then has none now (M_i' <= mu M_i): growth 1
        mu = np.maximum(np.divide(pays, last.pays, out=np.ones_like(pays), where=last.pays > 0), 1.0)
        bound = np.maximum(last.bounds + (kappa - 1.0) * last.values, 0.0)
        if last.debt_px > debt_px:
            bound += (last.debt_px - debt_px) * last.pays
        bound *= mu
        allowance = last.allowances * (kappa * max(debt_px / last.debt_px, 1.0)) * mu
        if not np.all(bound + allowance < threshold):  # False with any NaN
            return False
        self._last = self._proof(ceiling, bound, last.values * kappa * mu, allowance, debt_px, last.assets)
        return True
